package mgmt

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/pattern"
	"github.com/warrenmq/warren/vhost"
)

// object is one item of a listing, as JSON.
type object = map[string]any

// maxPageSize is the largest page RabbitMQ serves.
const maxPageSize = 500

// listInVhosts answers a listing of the entries each of the request's
// virtual hosts (the one it names, or every one u may see) gives.
func (s *Server) listInVhosts(w http.ResponseWriter, r *http.Request, u *auth.User, entries func(v *vhost.VHost) []entry) error {
	vhosts, err := s.vhostsFor(r, u)
	if err != nil {
		return err
	}
	var items []entry
	for _, v := range vhosts {
		items = append(items, entries(v)...)
	}
	return writeEntries(w, r, items)
}

// entriesOf makes the entries of xs, each rendered only when the listing
// needs its object.
func entriesOf[T any](xs []T, name func(T) string, render func(T) object) []entry {
	out := make([]entry, len(xs))
	for i, x := range xs {
		out[i] = entry{name: name(x), build: func() object { return render(x) }}
	}
	return out
}

// entriesOfObjects makes entries of objects already built.
func entriesOfObjects(items []object) []entry {
	entries := make([]entry, len(items))
	for i, o := range items {
		n, _ := o["name"].(string)
		entries[i] = entry{name: n, obj: o}
	}
	return entries
}

// writeList answers a listing of items (see writeEntries).
func writeList(w http.ResponseWriter, r *http.Request, items []object) error {
	return writeEntries(w, r, entriesOfObjects(items))
}

// entry is one item of a listing: its name, and its object, which a
// listing of many (10,000 queues) builds only when it needs more than the
// name: to sort by another field, or to answer with it.
type entry struct {
	name  string
	obj   object
	build func() object
}

// object returns e's object, building it once.
func (e *entry) object() object {
	if e.obj == nil {
		e.obj = e.build()
	}
	return e.obj
}

// writeEntries answers a listing with RabbitMQ's query parameters: name
// and use_regex filter by name, sort and sort_reverse order by a (dotted)
// field, page and page_size paginate (the answer is then an object
// describing the page), columns keeps only the (dotted) fields named.
func writeEntries(w http.ResponseWriter, r *http.Request, items []entry) error {
	q := r.URL.Query()
	total := len(items)
	if name := q.Get("name"); name != "" {
		match := func(s string) bool { return strings.Contains(s, name) }
		if q.Get("use_regex") == "true" {
			re, err := pattern.Compile(name)
			if err != nil {
				return badRequest("invalid regular expression: " + err.Error())
			}
			match = re.Match
		}
		items = slices.DeleteFunc(items, func(e entry) bool { return !match(e.name) })
	}
	switch key := q.Get("sort"); key {
	case "":
	case "name":
		slices.SortStableFunc(items, func(a, b entry) int { return cmp.Compare(a.name, b.name) })
	default:
		for i := range items {
			items[i].object()
		}
		slices.SortStableFunc(items, func(a, b entry) int { return compareValues(field(a.obj, key), field(b.obj, key)) })
	}
	if q.Get("sort_reverse") == "true" {
		slices.Reverse(items)
	}
	filtered := len(items)
	var page map[string]any
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return badRequest("page must be a positive integer")
		}
		size := 100
		if ps := q.Get("page_size"); ps != "" {
			if size, err = strconv.Atoi(ps); err != nil || size < 1 || size > maxPageSize {
				return badRequest("page_size must be between 1 and " + strconv.Itoa(maxPageSize))
			}
		}
		pages := max(1, int(math.Ceil(float64(filtered)/float64(size))))
		if n > pages {
			return badRequest("page out of range")
		}
		start := (n - 1) * size
		items = items[start:min(start+size, filtered)]
		page = map[string]any{"filtered_count": filtered, "item_count": len(items), "page": n, "page_count": pages,
			"page_size": size, "total_count": total}
	}
	out := make([]object, len(items))
	var cols []string
	if c := q.Get("columns"); c != "" {
		cols = strings.Split(c, ",")
	}
	for i := range items {
		out[i] = items[i].object()
		if cols != nil {
			out[i] = pick(out[i], cols)
		}
	}
	if page != nil {
		page["items"] = out
		writeJSON(w, page)
		return nil
	}
	writeJSON(w, out)
	return nil
}

// writeObject answers with one object, keeping only ?columns.
func writeObject(w http.ResponseWriter, r *http.Request, o object) {
	if cols := r.URL.Query().Get("columns"); cols != "" {
		o = pick(o, strings.Split(cols, ","))
	}
	writeJSON(w, o)
}

// field reads a dotted path in o.
func field(o object, path string) any {
	var v any = o
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// pick keeps the (dotted) columns of o, nested as they were. The maps it
// picks are copied: o's may be a vhost's own (a policy's definition), and
// a later column inside one ("definition,definition.max-length") writes
// into it.
func pick(o object, cols []string) object {
	out := object{}
	for _, c := range cols {
		parts := strings.Split(c, ".")
		v := field(o, c)
		if v == nil {
			continue
		}
		dst := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := dst[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				dst[p] = next
			}
			dst = next
		}
		dst[parts[len(parts)-1]] = copyJSON(v)
	}
	return out
}

// copyJSON copies the maps and lists of a JSON value.
func copyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = copyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyJSON(e)
		}
		return out
	}
	return v
}

// compareValues orders JSON values: numbers by value, the rest as text.
func compareValues(a, b any) int {
	fa, aNum := number(a)
	fb, bNum := number(b)
	if aNum && bNum {
		return cmp.Compare(fa, fb)
	}
	return cmp.Compare(text(a), text(b))
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
