package amqp

import (
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/exchange"
)

// Resource kinds, as RabbitMQ's ACCESS_REFUSED texts name them.
const (
	resExchange = "exchange"
	resQueue    = "queue"
)

// permit checks the connection's user's access a to the named exchange or
// queue, as RabbitMQ does for each operation (see access-control): a
// refusal is 403 ACCESS_REFUSED. The default exchange is "amq.default" to
// permissions.
func (c *conn) permit(a auth.Access, kind, name string) error {
	if kind == resExchange && name == "" {
		name = "amq.default"
	}
	if c.srv.users.Allowed(c.user.Name, c.vhost.Name(), a, name) {
		return nil
	}
	return wire.Errorf(wire.AccessRefused, "access to "+kind+" '"+name+"' in vhost '"+c.vhost.Name()+"' refused for user '"+c.user.Name+"'")
}

// permitTopic checks a routing key against the user's topic permission on
// the exchange, when it is a topic exchange: Write for a publish, Read for
// a binding.
func (c *conn) permitTopic(a auth.Access, exchangeName, routingKey string) error {
	if kind, ok := c.vhost.ExchangeKind(exchangeName); !ok || kind != exchange.KindTopic {
		return nil
	}
	if c.srv.users.TopicAllowed(c.user.Name, c.vhost.Name(), exchangeName, a, routingKey) {
		return nil
	}
	what := "write"
	if a == auth.Read {
		what = "read"
	}
	return wire.Errorf(wire.AccessRefused, what+" access to topic '"+routingKey+"' in exchange '"+exchangeName+"' in vhost '"+
		c.vhost.Name()+"' refused for user '"+c.user.Name+"'")
}

// permitBind checks a binding of destination (a queue or an exchange) to
// source: write on the destination, read on the source and, on a topic
// exchange, on the binding key.
func (c *conn) permitBind(destKind, destination, source, key string) error {
	if err := c.permit(auth.Write, destKind, destination); err != nil {
		return err
	}
	if err := c.permit(auth.Read, resExchange, source); err != nil {
		return err
	}
	return c.permitTopic(auth.Read, source, key)
}

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
	if err := c.permit(auth.Write, resExchange, exchangeName); err != nil {
		return err
	}
	if err := c.permitTopic(auth.Write, exchangeName, routingKey); err != nil {
		return err
	}
	kind, _ := c.vhost.ExchangeKind(exchangeName)
	*pa = publishAccess{valid: true, authGen: authGen, vhGen: vhGen, exchange: exchangeName, key: routingKey,
		keyMatters: kind == exchange.KindTopic}
	return nil
}
