package mgmt

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/vhost"
)

func (s *Server) vhostObject(v *vhost.VHost) object {
	m := v.Meta()
	var ready, unacked int
	for _, q := range v.Queues() {
		st := q.Stats()
		ready += st.Ready
		unacked += st.Unacked
	}
	dqt := m.DefaultQueueType
	if dqt == "" {
		dqt = "undefined"
	}
	tags := m.Tags // a list, as RabbitMQ 3.9 and later answer
	if tags == nil {
		tags = []string{}
	}
	return object{
		"name": v.Name(), "description": m.Description, "tags": tags, "default_queue_type": dqt,
		"metadata": object{"description": m.Description, "tags": tags}, "tracing": false,
		"cluster_state": object{s.d.Node.Name: "running"},
		"messages":      ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked,
		"messages_details": details(0), "messages_ready_details": details(0), "messages_unacknowledged_details": details(0),
	}
}

func (s *Server) listVhosts(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	return s.listInVhosts(w, r, u, func(v *vhost.VHost) []entry {
		return []entry{{name: v.Name(), build: func() object { return s.vhostObject(v) }}}
	})
}

func (s *Server) getVhost(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	writeObject(w, r, s.vhostObject(v))
	return nil
}

// metaFromJSON reads a virtual host's description, tags and default queue
// type as PUT /api/vhosts and definitions files give them.
func metaFromJSON(body map[string]any) (vhost.Meta, error) {
	var m vhost.Meta
	var err error
	src := body
	if md, ok := body["metadata"].(map[string]any); ok {
		src = md
	}
	if m.Description, err = stringField(src["description"], ""); err != nil {
		return m, err
	}
	if m.Tags, err = tagsField(src["tags"]); err != nil {
		return m, err
	}
	dqt, err := stringField(body["default_queue_type"], "")
	if err != nil {
		return m, err
	}
	if dqt != "undefined" {
		m.DefaultQueueType = dqt
	}
	return m, nil
}

func (s *Server) putVhost(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	m, err := metaFromJSON(body)
	if err != nil {
		return err
	}
	name := r.PathValue("vhost")
	if name == "" {
		return badRequest("vhost name must not be empty")
	}
	isNew, err := s.d.Vhosts.Put(name, m)
	if err != nil {
		return err
	}
	if isNew {
		// RabbitMQ gives the creating user full permissions on it.
		if err := s.d.Users.SetPermission(name, u.Name, ".*", ".*", ".*"); err != nil {
			return err
		}
	}
	created(w, isNew)
	return nil
}

func (s *Server) deleteVhost(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	return deleted(w, s.d.Vhosts.Delete(r.PathValue("vhost")), vhost.ErrNoVhost)
}

// deleted answers a deletion that returned err: 204, or 404 when err is
// missing (the object did not exist).
func deleted(w http.ResponseWriter, err, missing error) error {
	switch {
	case errors.Is(err, missing):
		return notFound()
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func userObject(u *auth.User) object {
	limits := object{}
	for k, v := range u.Limits {
		limits[k] = v
	}
	return object{
		"name": u.Name, "password_hash": base64.StdEncoding.EncodeToString(u.PasswordHash),
		"hashing_algorithm": u.HashingAlgorithm, "tags": u.Tags, "limits": limits,
	}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	var items []object
	for _, u := range s.d.Users.Users() {
		items = append(items, userObject(u))
	}
	return writeList(w, r, items)
}

func (s *Server) usersWithoutPermissions(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	with := map[string]bool{}
	for _, p := range s.d.Users.Permissions() {
		with[p.User] = true
	}
	var items []object
	for _, u := range s.d.Users.Users() {
		if !with[u.Name] {
			items = append(items, userObject(u))
		}
	}
	return writeList(w, r, items)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	u := s.d.Users.User(r.PathValue("user"))
	if u == nil {
		return notFound()
	}
	writeObject(w, r, userObject(u))
	return nil
}

// userFromJSON builds a user from a PUT body or a definitions entry: a
// password (hashed here) or a password_hash (base64, with its
// hashing_algorithm), and tags.
func userFromJSON(name string, body map[string]any) (*auth.User, error) {
	u := &auth.User{Name: name}
	var err error
	if u.Tags, err = tagsField(body["tags"]); err != nil {
		return nil, err
	}
	// limits, as RabbitMQ's definitions carry them; absent keeps the
	// user's own.
	if l, ok := body["limits"].(map[string]any); ok && len(l) > 0 {
		u.Limits = map[string]int64{}
		for k, v := range l {
			if k != auth.LimitConnections && k != auth.LimitChannels {
				return nil, badRequest("unknown user limit " + k)
			}
			if u.Limits[k], err = intField(v, 0); err != nil {
				return nil, err
			}
		}
	}
	if u.HashingAlgorithm, err = stringField(body["hashing_algorithm"], auth.HashSHA256); err != nil {
		return nil, err
	}
	if !auth.KnownHashing(u.HashingAlgorithm) {
		return nil, badRequest("unknown hashing algorithm " + u.HashingAlgorithm)
	}
	switch {
	case body["password"] != nil:
		pw, err := stringField(body["password"], "")
		if err != nil {
			return nil, err
		}
		u.PasswordHash, u.HashingAlgorithm = auth.HashPassword(pw), auth.HashSHA256
	case body["password_hash"] != nil:
		h, err := stringField(body["password_hash"], "")
		if err != nil {
			return nil, err
		}
		if u.PasswordHash, err = base64.StdEncoding.DecodeString(h); err != nil {
			return nil, badRequest("password_hash is not valid base64")
		}
	default:
		// Neither: a new user gets no password (it cannot log in with
		// one); an existing one keeps its own (see putUser).
		u.PasswordHash = nil
	}
	return u, nil
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	name := r.PathValue("user")
	u, err := userFromJSON(name, body)
	if err != nil {
		return err
	}
	old := s.d.Users.User(name)
	if old != nil && body["password"] == nil && body["password_hash"] == nil {
		u.PasswordHash, u.HashingAlgorithm = old.PasswordHash, old.HashingAlgorithm
	}
	isNew := old == nil
	if err := s.d.Users.PutUser(u); err != nil {
		return err
	}
	created(w, isNew)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	return deleted(w, s.d.Users.DeleteUser(r.PathValue("user")), auth.ErrNoUser)
}

func (s *Server) bulkDeleteUsers(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	var body struct {
		Users []string `json:"users"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	for _, name := range body.Users {
		if err := s.d.Users.DeleteUser(name); err != nil && !errors.Is(err, auth.ErrNoUser) {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func permissionObject(p *auth.Permission) object {
	return object{"user": p.User, "vhost": p.VHost, "configure": p.Configure, "write": p.Write, "read": p.Read}
}

// grantsOnPath renders those of the grants (permissions or topic
// permissions, each with its vhost and user) that are of the path's vhost
// and user, each when the path names one; 404 when it names one that does
// not exist.
func grantsOnPath[P any](s *Server, r *http.Request, all []P, of func(P) (vhost, user string), render func(P) object) ([]object, error) {
	vh, user := r.PathValue("vhost"), r.PathValue("user")
	if vh != "" && s.d.Vhosts.Get(vh) == nil || user != "" && s.d.Users.User(user) == nil {
		return nil, notFound()
	}
	var items []object
	for _, p := range all {
		if pv, pu := of(p); (vh == "" || pv == vh) && (user == "" || pu == user) {
			items = append(items, render(p))
		}
	}
	return items, nil
}

// listPermissions lists permissions, of the path's vhost or user when it
// names one.
func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	items, err := grantsOnPath(s, r, s.d.Users.Permissions(),
		func(p *auth.Permission) (string, string) { return p.VHost, p.User }, permissionObject)
	if err != nil {
		return err
	}
	return writeList(w, r, items)
}

func (s *Server) getPermission(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	p := s.d.Users.Permission(r.PathValue("vhost"), r.PathValue("user"))
	if p == nil {
		return notFound()
	}
	writeObject(w, r, permissionObject(p))
	return nil
}

// grantRequest reads a PUT of a permission or topic permission: its body,
// and the vhost and user of its path, which must exist.
func (s *Server) grantRequest(r *http.Request) (body map[string]any, vh, user string, err error) {
	if err = decodeBody(r, &body); err != nil {
		return
	}
	vh, user = r.PathValue("vhost"), r.PathValue("user")
	if s.d.Vhosts.Get(vh) == nil {
		return nil, "", "", badRequest("vhost_not_found")
	}
	if s.d.Users.User(user) == nil {
		return nil, "", "", badRequest("user_not_found")
	}
	return body, vh, user, nil
}

func (s *Server) putPermission(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	body, vh, user, err := s.grantRequest(r)
	if err != nil {
		return err
	}
	var conf, write, read string
	for _, f := range []struct {
		key string
		dst *string
	}{{"configure", &conf}, {"write", &write}, {"read", &read}} {
		if *f.dst, err = stringField(body[f.key], ""); err != nil {
			return err
		}
	}
	isNew := s.d.Users.Permission(vh, user) == nil
	if err := s.d.Users.SetPermission(vh, user, conf, write, read); err != nil {
		return badRequest(err.Error())
	}
	created(w, isNew)
	return nil
}

func (s *Server) deletePermission(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	vh, user := r.PathValue("vhost"), r.PathValue("user")
	if s.d.Users.Permission(vh, user) == nil {
		return notFound()
	}
	if err := s.d.Users.ClearPermission(vh, user); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func topicPermissionObject(p *auth.TopicPermission) object {
	return object{"user": p.User, "vhost": p.VHost, "exchange": p.Exchange, "write": p.Write, "read": p.Read}
}

// listTopicPermissions lists topic permissions, of the path's vhost and
// user when it names them.
func (s *Server) listTopicPermissions(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	items, err := grantsOnPath(s, r, s.d.Users.TopicPermissions(),
		func(p *auth.TopicPermission) (string, string) { return p.VHost, p.User }, topicPermissionObject)
	if err != nil {
		return err
	}
	if r.PathValue("vhost") != "" && r.PathValue("user") != "" && len(items) == 0 {
		return notFound()
	}
	return writeList(w, r, items)
}

func (s *Server) putTopicPermission(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	body, vh, user, err := s.grantRequest(r)
	if err != nil {
		return err
	}
	x, err := stringField(body["exchange"], "")
	if err != nil {
		return err
	}
	if x == "" {
		return badRequest("key_missing: exchange")
	}
	write, err := stringField(body["write"], "")
	if err != nil {
		return err
	}
	read, err := stringField(body["read"], "")
	if err != nil {
		return err
	}
	if err := s.d.Users.SetTopicPermission(vh, user, x, write, read); err != nil {
		return badRequest(err.Error())
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) deleteTopicPermissions(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	vh, user := r.PathValue("vhost"), r.PathValue("user")
	// As RabbitMQ: 404 when the user has none on the vhost.
	if !slices.ContainsFunc(s.d.Users.TopicPermissions(), func(p *auth.TopicPermission) bool { return p.VHost == vh && p.User == user }) {
		return notFound()
	}
	if err := s.d.Users.ClearTopicPermission(vh, user, r.URL.Query().Get("exchange")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func policyObject(vh string, p vhost.Policy) object {
	return object{"vhost": vh, "name": p.Name, "pattern": p.Pattern, "apply-to": p.ApplyTo, "definition": p.Definition,
		"priority": p.Priority}
}

func (s *Server) listPolicies(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		return s.listInVhosts(w, r, u, func(v *vhost.VHost) []entry {
			return entriesOf(v.Policies(operator), func(p vhost.Policy) string { return p.Name },
				func(p vhost.Policy) object { return policyObject(v.Name(), p) })
		})
	}
}

// policyFor returns the policy the request names.
func (s *Server) policyFor(r *http.Request, u *auth.User, operator bool) (*vhost.VHost, *vhost.Policy, error) {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range v.Policies(operator) {
		if p.Name == r.PathValue("name") {
			return v, &p, nil
		}
	}
	return v, nil, notFound()
}

func (s *Server) getPolicy(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, p, err := s.policyFor(r, u, operator)
		if err != nil {
			return err
		}
		writeObject(w, r, policyObject(v.Name(), *p))
		return nil
	}
}

// policyFromJSON reads a policy from a PUT body or a definitions entry.
func policyFromJSON(name string, body map[string]any) (vhost.Policy, error) {
	p := vhost.Policy{Name: name}
	var err error
	if p.Pattern, err = stringField(body["pattern"], ""); err != nil {
		return p, err
	}
	if p.ApplyTo, err = stringField(body["apply-to"], vhost.ApplyToAll); err != nil {
		return p, err
	}
	prio, err := intField(body["priority"], 0)
	if err != nil {
		return p, err
	}
	p.Priority = int(prio)
	def, ok := body["definition"].(map[string]any)
	if !ok && body["definition"] != nil {
		return p, badRequest("definition must be an object")
	}
	p.Definition = def
	return p, nil
}

// policyErr turns a policy's validation error into RabbitMQ's 400.
func policyErr(err error) error {
	var pe *vhost.PolicyError
	if errors.As(err, &pe) {
		return badRequest("Validation failed\n\n" + pe.Reason + "\n")
	}
	return err
}

func (s *Server) putPolicy(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, existing, err := s.policyFor(r, u, operator)
		if v == nil {
			return err
		}
		var body map[string]any
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		p, err := policyFromJSON(r.PathValue("name"), body)
		if err != nil {
			return err
		}
		if err := v.SetPolicy(p, operator); err != nil {
			return policyErr(err)
		}
		created(w, existing == nil)
		return nil
	}
}

func (s *Server) deletePolicy(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, err := s.vhostFor(r, u)
		if err != nil {
			return err
		}
		ok, err := v.DeletePolicy(r.PathValue("name"), operator)
		if err != nil {
			return err
		}
		if !ok {
			return notFound()
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) listVhostLimits(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	return s.listInVhosts(w, r, u, func(v *vhost.VHost) []entry {
		if l := v.Limits(); len(l) > 0 {
			return entriesOfObjects([]object{{"vhost": v.Name(), "value": l}})
		}
		return nil
	})
}

func (s *Server) putVhostLimit(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	n, err := limitValue(r)
	if err != nil {
		return err
	}
	if err := s.d.Vhosts.SetLimit(v.Name(), r.PathValue("name"), n); err != nil {
		return badRequest(err.Error())
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteVhostLimit(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	if err := s.d.Vhosts.ClearLimit(v.Name(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
