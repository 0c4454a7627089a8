package mgmt

import (
	"fmt"
	"testing"

	"github.com/warrenmq/warren/vhost"
)

// BenchmarkQueuesPage is what the console's queue list asks every five
// seconds of a broker with 10,000 queues: one sorted page of 50, with the
// columns it shows.
func BenchmarkQueuesPage(b *testing.B) {
	fx := newFixture(b)
	v := fx.vhosts.Get(vhost.DefaultName)
	for i := range 10000 {
		if _, err := v.DeclareQueue(vhost.QueueSpec{Name: fmt.Sprintf("q-%05d", i)}, false); err != nil {
			b.Fatal(err)
		}
	}
	const columns = "&columns=name,vhost,type,state,node,messages_ready,messages_unacknowledged,messages," +
		"messages_details.rate,message_stats.publish_details.rate,message_stats.deliver_get_details.rate,consumers"
	// By name (the console's default) only the page's 50 objects are
	// built; by another field, every queue's.
	for _, sort := range []string{"name", "messages"} {
		b.Run("sort="+sort, func(b *testing.B) {
			path := "/api/queues?page=3&page_size=50&sort=" + sort + "&sort_reverse=true" + columns
			b.ReportAllocs()
			for b.Loop() {
				if r := fx.do(b, "GET", path, nil); r.status != 200 {
					b.Fatalf("status %d", r.status)
				}
			}
		})
	}
}
