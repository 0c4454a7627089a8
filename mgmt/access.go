package mgmt

import (
	"net"
	"net/http"
	"slices"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/vhost"
)

// level is the user tag an endpoint needs, as RabbitMQ's management
// plugin grades them: administrator may do everything, monitoring sees
// everything, policymaker manages policies, management uses the API at
// all.
type level int

const (
	levelManagement level = iota
	levelPolicymaker
	levelMonitoring
	levelAdministrator
)

// hasLevel reports whether u's tags give it l.
func hasLevel(u *auth.User, l level) bool {
	if u.HasTag(auth.TagAdministrator) {
		return true
	}
	switch l {
	case levelManagement:
		return slices.ContainsFunc(u.Tags, func(t string) bool {
			return t == auth.TagManagement || t == auth.TagPolicymaker || t == auth.TagMonitoring
		})
	case levelPolicymaker:
		return u.HasTag(auth.TagPolicymaker)
	case levelMonitoring:
		return u.HasTag(auth.TagMonitoring)
	}
	return false
}

// handler is an API endpoint: it runs for an authenticated user with the
// endpoint's level.
type handler func(w http.ResponseWriter, r *http.Request, u *auth.User) error

// wrap puts h behind authentication and l.
func (s *Server) wrap(l level, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authenticate(r)
		if err != nil {
			s.fail(w, err)
			return
		}
		if u == nil {
			// A browser shows its own login dialog for this header, and
			// then sends what was typed in to every request, other sites'
			// included: the console, whose calls and links carry
			// X-Requested-With or its (expired) cookie, has its own login
			// page instead.
			if _, err := r.Cookie(sessionCookie); err != nil && r.Header.Get("X-Requested-With") == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="RabbitMQ Management"`)
			}
			writeError(w, http.StatusUnauthorized, "not_authorised", "Login failed")
			return
		}
		if !hasLevel(u, l) {
			s.fail(w, forbidden("Not management user"))
			return
		}
		if err := h(w, r, u); err != nil {
			s.fail(w, err)
		}
	}
}

// authenticate returns the request's user: by its basic credentials when
// it has them, else by its console session (see session.go), whose CSRF
// token it must carry to change anything. u is nil when neither logs in.
func (s *Server) authenticate(r *http.Request) (*auth.User, error) {
	if name, pass, ok := r.BasicAuth(); ok {
		u, err := s.d.Users.Authenticate(name, pass, remoteAddr(r))
		if err != nil {
			return nil, nil
		}
		return u, nil
	}
	u, ses, _ := s.sessionOf(r)
	if u == nil {
		return nil, nil
	}
	return u, checkCSRF(r, ses)
}

// remoteAddr is the request's peer address, for loopback-only users.
func remoteAddr(r *http.Request) net.Addr {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	a, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil
	}
	return a
}

// seesAll reports whether u sees every virtual host's objects and every
// connection (monitoring and administrator users).
func seesAll(u *auth.User) bool { return hasLevel(u, levelMonitoring) }

// visible reports whether u may see the objects of the virtual host.
func (s *Server) visible(u *auth.User, vhostName string) bool {
	return seesAll(u) || s.d.Users.CanAccessVhost(u.Name, vhostName)
}

// vhostFor returns the virtual host the request names, which u must be
// able to use: 404 when it does not exist, 403 when u has no access.
func (s *Server) vhostFor(r *http.Request, u *auth.User) (*vhost.VHost, error) {
	name := r.PathValue("vhost")
	v := s.d.Vhosts.Get(name)
	if v == nil {
		return nil, notFound()
	}
	if !s.d.Users.CanAccessVhost(u.Name, name) && !(r.Method == http.MethodGet && seesAll(u)) {
		return nil, forbidden("Not authorised to access virtual host")
	}
	return v, nil
}

// access is u's access to v, checked as AMQP checks it.
func (s *Server) access(u *auth.User, v *vhost.VHost) amqp.Access {
	return amqp.Access{Users: s.d.Users, User: u.Name, VHost: v}
}

// vhosts returns the virtual hosts u may see, by name, or only the one the
// request names.
func (s *Server) vhostsFor(r *http.Request, u *auth.User) ([]*vhost.VHost, error) {
	if r.PathValue("vhost") != "" {
		v, err := s.vhostFor(r, u)
		if err != nil {
			return nil, err
		}
		return []*vhost.VHost{v}, nil
	}
	var out []*vhost.VHost
	for _, name := range s.d.Vhosts.Names() {
		if v := s.d.Vhosts.Get(name); v != nil && s.visible(u, name) {
			out = append(out, v)
		}
	}
	return out, nil
}
