package vhost

import "testing"

// Declarations, creations and deletions are counted across virtual hosts;
// passive declares and failed ones are not.
func TestQueueCounts(t *testing.T) {
	r := memRegistry()
	a, err := r.Add("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Add("b")
	if err != nil {
		t.Fatal(err)
	}
	mustQueue(t, a, QueueSpec{Name: "q"})
	mustQueue(t, a, QueueSpec{Name: "q"}) // redeclared: declared, not created
	mustQueue(t, b, QueueSpec{Name: "q"})
	if _, err := a.DeclareQueue(QueueSpec{Name: "q"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeclareQueue(QueueSpec{Name: "q", Durable: true}, false); err == nil {
		t.Fatal("inequivalent redeclare succeeded")
	}
	if _, err := a.DeleteQueue("q", 0, false, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if got, want := r.QueueCounts(), (QueueCounts{Declared: 3, Created: 2, Deleted: 2}); got != want {
		t.Fatalf("QueueCounts() = %+v, want %+v", got, want)
	}
}
