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

// listInVhosts answers a listing of the objects each of the request's
// virtual hosts (the one it names, or every one u may see) gives.
func (s *Server) listInVhosts(w http.ResponseWriter, r *http.Request, u *auth.User, objects func(v *vhost.VHost) []object) error {
	vhosts, err := s.vhostsFor(r, u)
	if err != nil {
		return err
	}
	var items []object
	for _, v := range vhosts {
		items = append(items, objects(v)...)
	}
	return writeList(w, r, items)
}

// objectsOf renders each of xs.
func objectsOf[T any](xs []T, render func(T) object) []object {
	out := make([]object, len(xs))
	for i, x := range xs {
		out[i] = render(x)
	}
	return out
}

// writeList answers a listing with RabbitMQ's query parameters: name and
// use_regex filter by name, sort and sort_reverse order by a (dotted)
// field, page and page_size paginate (the answer is then an object
// describing the page), columns keeps only the (dotted) fields named.
func writeList(w http.ResponseWriter, r *http.Request, items []object) error {
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
		items = slices.DeleteFunc(items, func(o object) bool {
			n, _ := o["name"].(string)
			return !match(n)
		})
	}
	if key := q.Get("sort"); key != "" {
		slices.SortStableFunc(items, func(a, b object) int { return compareValues(field(a, key), field(b, key)) })
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
	if cols := q.Get("columns"); cols != "" {
		for i, o := range items {
			items[i] = pick(o, strings.Split(cols, ","))
		}
	}
	if items == nil {
		items = []object{}
	}
	if page != nil {
		page["items"] = items
		writeJSON(w, page)
		return nil
	}
	writeJSON(w, items)
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
