package amqp

import (
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/vhost"
)

func (ch *channel) exchangeDeclare(m *wire.ExchangeDeclare) error {
	ac := ch.conn.access()
	err := ac.Permit(auth.Configure, resExchange, m.Exchange)
	if !m.Passive {
		err = ac.PermitExchangeDeclare(m.Exchange, m.Arguments)
	}
	if err != nil {
		return err
	}
	err = ch.conn.vhost.DeclareExchange(vhost.ExchangeSpec{
		Name: m.Exchange, Kind: m.Type, Durable: m.Durable, AutoDelete: m.AutoDelete, Internal: m.Internal, Args: m.Arguments,
	}, m.Passive)
	return ch.reply(m.NoWait, &wire.ExchangeDeclareOk{}, err)
}

func (ch *channel) exchangeDelete(m *wire.ExchangeDelete) error {
	if err := ch.conn.access().Permit(auth.Configure, resExchange, m.Exchange); err != nil {
		return err
	}
	return ch.reply(m.NoWait, &wire.ExchangeDeleteOk{}, ch.conn.vhost.DeleteExchange(m.Exchange, m.IfUnused))
}

// queueName resolves the empty name to the channel's last declared queue,
// as RabbitMQ does.
func (ch *channel) queueName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if ch.lastQueue == "" {
		return "", wire.Errorf(wire.NotFound, "no previously declared queue")
	}
	return ch.lastQueue, nil
}

func (ch *channel) queueDeclare(m *wire.QueueDeclare) error {
	if m.Queue == replyTo {
		// The direct reply-to pseudo-queue always "exists", as in RabbitMQ
		// (clients such as Spring AMQP probe for it this way).
		return ch.reply(m.NoWait, &wire.QueueDeclareOk{Queue: replyTo, ConsumerCount: 1}, nil)
	}
	c := ch.conn
	name, serverNamed := m.Queue, false
	switch {
	case m.Passive && name == "" && ch.lastQueue != "":
		name = ch.lastQueue
	case !m.Passive && name == "":
		name, serverNamed = vhost.GenerateName("amq.gen-"), true
	}
	if name != "" {
		ac := c.access()
		err := ac.Permit(auth.Configure, resQueue, name)
		if !m.Passive {
			err = ac.PermitQueueDeclare(name, m.Arguments)
		}
		if err != nil {
			return err
		}
	}
	q, err := c.vhost.DeclareQueue(vhost.QueueSpec{
		Name: name, Durable: m.Durable, Exclusive: m.Exclusive, AutoDelete: m.AutoDelete, Args: m.Arguments, Owner: c.id,
		ServerNamed: serverNamed,
	}, m.Passive)
	if err != nil {
		return err
	}
	ch.lastQueue = q.Name()
	st := q.Stats()
	return ch.reply(m.NoWait, &wire.QueueDeclareOk{Queue: q.Name(), MessageCount: uint32(st.Ready), ConsumerCount: uint32(st.Consumers)}, nil)
}

// bindingTarget resolves a queue.bind or unbind's queue and routing key: an
// empty queue is the last declared one, and with it an empty key is that
// queue's name.
func (ch *channel) bindingTarget(queueName, key string) (string, string, error) {
	name, err := ch.queueName(queueName)
	if err != nil {
		return "", "", err
	}
	if queueName == "" && key == "" {
		key = name
	}
	return name, key, nil
}

func (ch *channel) queueBind(m *wire.QueueBind) error {
	name, key, err := ch.bindingTarget(m.Queue, m.RoutingKey)
	if err == nil {
		err = ch.conn.access().PermitBind(resQueue, name, m.Exchange, key)
	}
	if err == nil {
		err = ch.conn.vhost.BindQueue(name, m.Exchange, key, m.Arguments, ch.conn.id)
	}
	return ch.reply(m.NoWait, &wire.QueueBindOk{}, err)
}

func (ch *channel) queueUnbind(m *wire.QueueUnbind) error {
	name, key, err := ch.bindingTarget(m.Queue, m.RoutingKey)
	if err == nil {
		err = ch.conn.access().PermitBind(resQueue, name, m.Exchange, key)
	}
	if err == nil {
		err = ch.conn.vhost.UnbindQueue(name, m.Exchange, key, m.Arguments)
	}
	return ch.reply(false, &wire.QueueUnbindOk{}, err)
}

func (ch *channel) queuePurge(m *wire.QueuePurge) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.access().Permit(auth.Read, resQueue, name); err != nil {
		return err
	}
	n, err := ch.conn.vhost.PurgeQueue(name, ch.conn.id)
	return ch.reply(m.NoWait, &wire.QueuePurgeOk{MessageCount: uint32(n)}, err)
}

func (ch *channel) queueDelete(m *wire.QueueDelete) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.access().Permit(auth.Configure, resQueue, name); err != nil {
		return err
	}
	n, err := ch.conn.vhost.DeleteQueue(name, ch.conn.id, m.IfUnused, m.IfEmpty)
	return ch.reply(m.NoWait, &wire.QueueDeleteOk{MessageCount: uint32(n)}, err)
}
