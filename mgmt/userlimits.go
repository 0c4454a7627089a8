package mgmt

import (
	"errors"
	"net/http"

	"github.com/warrenmq/warren/auth"
)

// User limits (max-connections, max-channels) at /api/user-limits, as
// RabbitMQ's management API has them.

func (s *Server) listUserLimits(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	name := r.PathValue("user")
	if name != "" && s.d.Users.User(name) == nil {
		return notFound()
	}
	out := []object{}
	for _, u := range s.d.Users.UsersWithLimits() {
		if name == "" || u.Name == name {
			out = append(out, object{"user": u.Name, "value": u.Limits})
		}
	}
	writeJSON(w, out)
	return nil
}

func (s *Server) putUserLimit(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	n, err := limitValue(r)
	if err != nil {
		return err
	}
	return s.userLimitDone(w, s.d.Users.SetUserLimit(r.PathValue("user"), r.PathValue("name"), n))
}

func (s *Server) deleteUserLimit(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	return s.userLimitDone(w, s.d.Users.ClearUserLimit(r.PathValue("user"), r.PathValue("name")))
}

// limitValue reads a limit's new value, {"value": N}, from a request.
func limitValue(r *http.Request) (int64, error) {
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return 0, err
	}
	return intField(body["value"], 0)
}

// userLimitDone answers a change of a user's limits.
func (s *Server) userLimitDone(w http.ResponseWriter, err error) error {
	switch {
	case errors.Is(err, auth.ErrNoUser):
		return notFound()
	case err != nil:
		return badRequest(err.Error())
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
