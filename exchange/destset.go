package exchange

import "sync"

// destSet is a set of destinations with a reference count each (the number
// of bindings that lead to the destination through this set). list holds the
// members in no particular order, so routing appends it in one copy.
type destSet struct {
	list []Destination
	refs []int32               // parallel to list; nil while every count is 1
	pos  map[Destination]int32 // index into list; built once the set grows
}

// indexFrom is the size from which a destSet keeps a position index instead
// of scanning its list.
const indexFrom = 8

func (s *destSet) len() int { return len(s.list) }

func (s *destSet) find(d Destination) int {
	if s.pos != nil {
		if i, ok := s.pos[d]; ok {
			return int(i)
		}
		return -1
	}
	for i, x := range s.list {
		if x == d {
			return i
		}
	}
	return -1
}

// add counts one more binding to d and reports whether d is new to the set.
func (s *destSet) add(d Destination) bool {
	if i := s.find(d); i >= 0 {
		if s.refs == nil {
			s.refs = make([]int32, len(s.list), cap(s.list))
			for j := range s.refs {
				s.refs[j] = 1
			}
		}
		s.refs[i]++
		return false
	}
	s.list = append(s.list, d)
	if s.refs != nil {
		s.refs = append(s.refs, 1)
	}
	if s.pos != nil {
		s.pos[d] = int32(len(s.list) - 1)
	} else if len(s.list) > indexFrom {
		s.pos = make(map[Destination]int32, len(s.list))
		for i, x := range s.list {
			s.pos[x] = int32(i)
		}
	}
	return true
}

// release counts one binding to d less and reports whether d left the set.
func (s *destSet) release(d Destination) bool {
	i := s.find(d)
	if i < 0 {
		return false
	}
	if s.refs != nil && s.refs[i] > 1 {
		s.refs[i]--
		return false
	}
	last := len(s.list) - 1
	if i != last {
		s.list[i] = s.list[last]
		if s.refs != nil {
			s.refs[i] = s.refs[last]
		}
		if s.pos != nil {
			s.pos[s.list[i]] = int32(i)
		}
	}
	s.list[last] = nil
	s.list = s.list[:last]
	if s.refs != nil {
		s.refs = s.refs[:last]
	}
	if s.pos != nil {
		delete(s.pos, d)
		if len(s.pos) == 0 {
			s.pos = nil
		}
	}
	if len(s.list) == 0 {
		s.list, s.refs = nil, nil
	}
	return true
}

// linearDedupMax is the largest tail dedupTail compacts by pairwise
// comparison; longer tails go through a pooled set.
const linearDedupMax = 32

var dedupPool = sync.Pool{New: func() any { return make(map[Destination]struct{}) }}

// dedupTail removes repeated destinations from out[start:], keeping the first
// of each, and returns the shortened slice. It allocates nothing on a warm
// path.
func dedupTail(out []Destination, start int) []Destination {
	tail := out[start:]
	if len(tail) < 2 {
		return out
	}
	n := 0
	if len(tail) <= linearDedupMax {
	outer:
		for _, d := range tail {
			for _, seen := range tail[:n] {
				if seen == d {
					continue outer
				}
			}
			tail[n] = d
			n++
		}
	} else {
		seen := dedupPool.Get().(map[Destination]struct{})
		for _, d := range tail {
			if _, dup := seen[d]; dup {
				continue
			}
			seen[d] = struct{}{}
			tail[n] = d
			n++
		}
		clear(seen)
		dedupPool.Put(seen)
	}
	clear(tail[n:])
	return out[:start+n]
}
