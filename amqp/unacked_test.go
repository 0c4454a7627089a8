package amqp

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestUnackedListModel checks the unacked list against a sorted slice of
// outstanding tags, over random pushes, single and multiple acks (tag 0
// included), unknown tags and restores.
func TestUnackedListModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var l unackedList
		var model []uint64 // outstanding tags, ascending
		next := uint64(0)
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0, 1:
				next++
				l.push(delivery{tag: next})
				model = append(model, next)
			case 2, 3:
				tag := rapid.Uint64Range(0, next+2).Draw(t, "tag")
				multiple := rapid.Bool().Draw(t, "multiple")
				got, ok := l.take(tag, multiple, nil)
				i, found := slices.BinarySearch(model, tag)
				wantOK := found || multiple && tag == 0
				if ok != wantOK {
					t.Fatalf("take(%d, %v) ok=%v, want %v (outstanding %v)", tag, multiple, ok, wantOK, model)
				}
				var want []uint64
				switch {
				case !ok:
				case multiple && tag == 0:
					want, model = model, nil
				case multiple:
					want = slices.Clone(model[:i+1])
					model = model[i+1:]
				default:
					want = []uint64{tag}
					model = slices.Delete(model, i, i+1)
				}
				var gotTags []uint64
				for _, d := range got {
					gotTags = append(gotTags, d.tag)
				}
				if !slices.Equal(gotTags, want) {
					t.Fatalf("take(%d, %v) = %v, want %v", tag, multiple, gotTags, want)
				}
				if rapid.Bool().Draw(t, "restore") && len(got) > 0 {
					l.restore(got)
					model = append(model, want...)
					slices.Sort(model)
				}
			case 4:
				all := l.takeAll(nil)
				if len(all) != len(model) {
					t.Fatalf("takeAll returned %d, want %d", len(all), len(model))
				}
				model = nil
			}
			if l.live != len(model) {
				t.Fatalf("live %d, want %d", l.live, len(model))
			}
		}
	})
}

// TestUnackedOverdue checks deadline tracking.
func TestUnackedOverdue(t *testing.T) {
	t.Parallel()
	var l unackedList
	l.push(delivery{tag: 1, deadline: 0})
	l.push(delivery{tag: 2, deadline: 500})
	l.push(delivery{tag: 3, deadline: 300})
	if _, late := l.overdue(299); late {
		t.Fatal("overdue before any deadline")
	}
	d, late := l.overdue(300)
	if !late || d.tag != 3 {
		t.Fatalf("overdue(300) = %v %v, want tag 3", d, late)
	}
	if _, ok := l.take(3, false, nil); !ok {
		t.Fatal("take 3")
	}
	if _, late := l.overdue(400); late {
		t.Fatal("overdue at 400 after the 300 deadline was acked")
	}
	if d, late := l.overdue(500); !late || d.tag != 2 {
		t.Fatalf("overdue(500) = %v %v, want tag 2", d, late)
	}
}

// TestUnackedCompacts checks that one delivery left unacknowledged while
// many later ones are acked does not keep their slots.
func TestUnackedCompacts(t *testing.T) {
	t.Parallel()
	var l unackedList
	l.push(delivery{tag: 1})
	for tag := uint64(2); tag < 100_000; tag++ {
		l.push(delivery{tag: tag})
		if _, ok := l.take(tag, false, nil); !ok {
			t.Fatalf("take %d", tag)
		}
	}
	if l.n > 4096 {
		t.Fatalf("%d slots held for %d live deliveries", l.n, l.live)
	}
	if got, ok := l.take(1, false, nil); !ok || len(got) != 1 || got[0].tag != 1 {
		t.Fatalf("the old delivery was lost: %v %v", got, ok)
	}
}
