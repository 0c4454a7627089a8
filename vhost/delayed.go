package vhost

import (
	"math"

	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/queue"
)

// releaseDelayed routes the messages of delayed-message exchange x that
// fell due, as the plugin does: through x's type, with x-delay turned
// negative, so that a delayed exchange on their way does not hold them
// again and consumers can tell they were delayed.
func (v *VHost) releaseDelayed(x *Exchange, msgs []*queue.Message) {
	var p internalPublisher
	defer p.done()
	for _, m := range msgs {
		delay, _ := queue.Delay(m.Props)
		dm, err := queue.Rewrite(m, m.Exchange, m.RoutingKey, func(p *wire.Properties) {
			if p.Headers == nil {
				p.Headers = wire.Table{}
			}
			if delay <= math.MaxInt32 {
				p.Headers["x-delay"] = int32(-delay)
			} else {
				p.Headers["x-delay"] = -delay
			}
		})
		if err != nil {
			v.log.Error("cannot route a delayed message", "vhost", v.name, "exchange", x.name, "err", err)
			continue
		}
		p.publish(v, x.name, dm, nil) // dropped if the exchange went meanwhile
	}
}
