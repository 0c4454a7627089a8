package amqp

import (
	"strconv"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/vhost"
)

// Resource kinds, as RabbitMQ's ACCESS_REFUSED texts name them.
const (
	resExchange = "exchange"
	resQueue    = "queue"
)

// Access checks one user's access to one virtual host as RabbitMQ's access
// control does for each operation (see access-control): every refusal is a
// 403 ACCESS_REFUSED *wire.Error with RabbitMQ's text. AMQP channels and
// the management API check through it, so that the two cannot differ.
type Access struct {
	Users *auth.Store
	User  string
	VHost *vhost.VHost
}

// Permit checks access a to the named exchange or queue (kind "exchange"
// or "queue"). The default exchange is "amq.default" to permissions.
func (ac Access) Permit(a auth.Access, kind, name string) error {
	if kind == resExchange && name == "" {
		name = "amq.default"
	}
	if ac.Users.Allowed(ac.User, ac.VHost.Name(), a, name) {
		return nil
	}
	return wire.Errorf(wire.AccessRefused, "access to "+kind+" '"+name+"' in vhost '"+ac.VHost.Name()+"' refused for user '"+ac.User+"'")
}

// PermitTopic checks a routing key against the user's topic permission on
// the exchange, when it is a topic exchange: Write for a publish, Read for
// a binding.
func (ac Access) PermitTopic(a auth.Access, exchangeName, routingKey string) error {
	if kind, ok := ac.VHost.ExchangeKind(exchangeName); !ok || kind != exchange.KindTopic {
		return nil
	}
	if ac.Users.TopicAllowed(ac.User, ac.VHost.Name(), exchangeName, a, routingKey) {
		return nil
	}
	what := "write"
	if a == auth.Read {
		what = "read"
	}
	return wire.Errorf(wire.AccessRefused, what+" access to topic '"+routingKey+"' in exchange '"+exchangeName+"' in vhost '"+
		ac.VHost.Name()+"' refused for user '"+ac.User+"'")
}

// PermitPublish checks a publish to the exchange with the routing key:
// write on the exchange and, on a topic exchange, on the key.
func (ac Access) PermitPublish(exchangeName, routingKey string) error {
	if err := ac.Permit(auth.Write, resExchange, exchangeName); err != nil {
		return err
	}
	return ac.PermitTopic(auth.Write, exchangeName, routingKey)
}

// PermitBind checks a binding (or unbinding) of destination (kind
// "queue" or "exchange") to source: write on the destination, read on the
// source and, on a topic exchange, on the binding key.
func (ac Access) PermitBind(destKind, destination, source, key string) error {
	if err := ac.Permit(auth.Write, destKind, destination); err != nil {
		return err
	}
	if err := ac.Permit(auth.Read, resExchange, source); err != nil {
		return err
	}
	return ac.PermitTopic(auth.Read, source, key)
}

// PermitExchangeDeclare checks declaring an exchange with args: configure
// on it and, with an alternate exchange, read on it and write on the
// alternate (unroutable messages will be published there).
func (ac Access) PermitExchangeDeclare(name string, args wire.Table) error {
	if err := ac.Permit(auth.Configure, resExchange, name); err != nil {
		return err
	}
	if ae, ok := args["alternate-exchange"].(string); ok {
		if err := ac.Permit(auth.Read, resExchange, name); err != nil {
			return err
		}
		return ac.Permit(auth.Write, resExchange, ae)
	}
	return nil
}

// PermitQueueDeclare checks declaring a queue with args: configure on it
// and, with a dead-letter exchange, read on it and write on the exchange
// (dead letters will be read from the queue and published there).
func (ac Access) PermitQueueDeclare(name string, args wire.Table) error {
	if err := ac.Permit(auth.Configure, resQueue, name); err != nil {
		return err
	}
	if dlx, ok := args["x-dead-letter-exchange"].(string); ok {
		if err := ac.Permit(auth.Read, resQueue, name); err != nil {
			return err
		}
		return ac.Permit(auth.Write, resExchange, dlx)
	}
	return nil
}

// CheckPublishProperties checks what RabbitMQ checks of a message before it
// routes it: the body size against max, user_id against the publisher's
// user, and the expiration. A failure is a 406 PRECONDITION_FAILED
// *wire.Error.
func CheckPublishProperties(user string, props wire.RawProperties, bodySize, max uint64) error {
	if bodySize > max {
		return wire.Errorf(wire.PreconditionFailed, "message size "+strconv.FormatUint(bodySize, 10)+
			" is larger than configured max size "+strconv.FormatUint(max, 10))
	}
	if uid, ok := props.UserID(); ok && uid != user {
		return wire.Errorf(wire.PreconditionFailed, "user_id property set to '"+uid+"' but authenticated user was '"+user+"'")
	}
	if _, present, problem := props.ExpirationMillis(); present && problem != "" {
		exp, _ := props.Expiration()
		return wire.Errorf(wire.PreconditionFailed, erlangPrinted("invalid expiration '"+exp+"': ", problem))
	}
	return nil
}

// MaxMessageSize is the largest message body the server accepts.
func (s *Server) MaxMessageSize() uint64 { return s.cfg.MaxMessageSize }

// access is the connection's user's access to its virtual host.
func (c *conn) access() Access { return Access{Users: c.srv.users, User: c.user.Name, VHost: c.vhost} }

// publishAccess remembers a channel's last publish permission check, good
// while the permissions and the exchange's routing do not change: the
// check (a regular expression or two) then costs nothing per message.
type publishAccess struct {
	valid          bool
	authGen, vhGen uint64
	exchange, key  string
	keyMatters     bool // a topic permission applies: the routing key was checked too
}

// permitPublish checks the user may publish to exchange with routingKey.
func (ch *channel) permitPublish(exchangeName, routingKey string) error {
	c := ch.conn
	pa := &ch.publishAccess
	authGen, vhGen := c.srv.users.Generation(), c.vhost.Generation()
	if pa.valid && pa.authGen == authGen && pa.vhGen == vhGen && pa.exchange == exchangeName &&
		(!pa.keyMatters || pa.key == routingKey) {
		return nil
	}
	pa.valid = false
	if err := c.access().PermitPublish(exchangeName, routingKey); err != nil {
		return err
	}
	kind, _ := c.vhost.ExchangeKind(exchangeName)
	*pa = publishAccess{valid: true, authGen: authGen, vhGen: vhGen, exchange: exchangeName, key: routingKey,
		keyMatters: kind == exchange.KindTopic}
	return nil
}
