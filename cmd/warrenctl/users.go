package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
)

// user is the part of GET /api/users/{name} that updates must keep.
type user struct {
	Name             string `json:"name"`
	PasswordHash     string `json:"password_hash"`
	HashingAlgorithm string `json:"hashing_algorithm"`
	Tags             any    `json:"tags"` // an array, or a comma-separated string in older APIs
}

// tagString is the user's tags as the comma-separated string PUT takes.
func (u *user) tagString() string {
	return strings.Join(toTags(u.Tags), ",")
}

// getUser reads a user.
func getUser(x *invocation, name string) (*user, error) {
	var u user
	err := x.api.call(x.ctx, request{method: http.MethodGet, path: []string{"users", name}, out: &u, notFound: noUser(name)})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// putUser creates or replaces a user with body.
func putUser(x *invocation, name string, body map[string]any) error {
	return x.api.call(x.ctx, request{method: http.MethodPut, path: []string{"users", name}, body: body})
}

// passwordArg is the password argument, or the first line of standard
// input when it was left out (as rabbitmqctl reads it).
func passwordArg(x *invocation, args []string) (string, error) {
	if len(args) > 1 {
		return args[1], nil
	}
	line, err := bufio.NewReader(x.stdin).ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return "", dataError("Password is not provided via argument or stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// addUser creates a user with no tags; like rabbitmqctl it refuses a user
// that exists. The check and the creation are two requests, so a user
// created in between by someone else is overwritten.
func addUser(x *invocation, args []string) error {
	name := args[0]
	if name == "" {
		return dataError("user cannot be an empty string")
	}
	password, err := passwordArg(x, args)
	if err != nil {
		return err
	}
	x.info(`Adding user "%s" ...`, name)
	_, err = getUser(x, name)
	switch {
	case err == nil:
		return &exitError{code: exitSoftware, msg: "Error:\n" + `User "` + name + `" already exists`}
	case !isNotFound(err):
		return err
	}
	if err := putUser(x, name, map[string]any{"password": password, "tags": ""}); err != nil {
		return err
	}
	x.info("Done. Don't forget to grant the user permissions to some virtual hosts! See 'warrenctl help set_permissions' to learn more.")
	return nil
}

// deleteUser deletes a user.
func deleteUser(x *invocation, args []string) error {
	x.info(`Deleting user "%s" ...`, args[0])
	return x.api.call(x.ctx, request{method: http.MethodDelete, path: []string{"users", args[0]}, notFound: noUser(args[0])})
}

// changePassword sets a new password and keeps the user's tags.
func changePassword(x *invocation, args []string) error {
	password, err := passwordArg(x, args)
	if err != nil {
		return err
	}
	x.info(`Changing password for user "%s" ...`, args[0])
	u, err := getUser(x, args[0])
	if err != nil {
		return err
	}
	return putUser(x, args[0], map[string]any{"password": password, "tags": u.tagString()})
}

// setUserTags replaces a user's tags and keeps its password hash.
func setUserTags(x *invocation, args []string) error {
	name, tagArgs := args[0], args[1:]
	x.info(`Setting tags for user "%s" to [%s] ...`, name, strings.Join(tagArgs, ", "))
	u, err := getUser(x, name)
	if err != nil {
		return err
	}
	return putUser(x, name, map[string]any{
		"password_hash":     u.PasswordHash,
		"hashing_algorithm": u.HashingAlgorithm,
		"tags":              strings.Join(tagArgs, ","),
	})
}

// addVHost creates a virtual host (or updates its metadata when it exists,
// as the API's PUT does).
func addVHost(x *invocation, args []string) error {
	x.info(`Adding vhost "%s" ...`, args[0])
	body := map[string]any{"description": x.opts.description, "tags": x.opts.tags}
	if x.opts.defaultQueueType != "" {
		body["default_queue_type"] = x.opts.defaultQueueType
	}
	return x.api.call(x.ctx, request{method: http.MethodPut, path: []string{"vhosts", args[0]}, body: body})
}

// deleteVHost deletes a virtual host.
func deleteVHost(x *invocation, args []string) error {
	x.info(`Deleting vhost "%s" ...`, args[0])
	return x.api.call(x.ctx, request{method: http.MethodDelete, path: []string{"vhosts", args[0]}, notFound: noVHost(args[0])})
}

// setPermissions sets a user's configure, write and read patterns.
func setPermissions(x *invocation, args []string) error {
	x.info(`Setting permissions for user "%s" in vhost "%s" ...`, args[0], x.opts.vhost)
	return x.api.call(x.ctx, request{
		method: http.MethodPut,
		path:   []string{"permissions", x.opts.vhost, args[0]},
		body:   map[string]string{"configure": args[1], "write": args[2], "read": args[3]},
	})
}

// clearPermissions revokes a user's permissions in the vhost.
func clearPermissions(x *invocation, args []string) error {
	x.info(`Clearing permissions for user "%s" in vhost "%s" ...`, args[0], x.opts.vhost)
	return x.api.call(x.ctx, request{
		method:   http.MethodDelete,
		path:     []string{"permissions", x.opts.vhost, args[0]},
		notFound: noObject(`User "` + args[0] + `" has no permissions in vhost "` + x.opts.vhost + `"`),
	})
}

// topicPermission is one entry of the topic permissions API.
type topicPermission struct {
	Exchange string `json:"exchange"`
	Write    string `json:"write"`
	Read     string `json:"read"`
}

// setTopicPermissions sets a user's topic permissions on one exchange.
func setTopicPermissions(x *invocation, args []string) error {
	x.info(`Setting topic permissions on "%s" for user "%s" in vhost "%s" ...`, args[1], args[0], x.opts.vhost)
	return x.api.call(x.ctx, request{
		method: http.MethodPut,
		path:   []string{"topic-permissions", x.opts.vhost, args[0]},
		body:   topicPermission{Exchange: args[1], Write: args[2], Read: args[3]},
	})
}

// clearTopicPermissions revokes a user's topic permissions in the vhost.
// The API deletes them for every exchange at once, so with an exchange
// argument it reads them first, deletes them all and puts back those of
// the other exchanges. That is three steps, not one: a change made by
// someone else in between can be lost, and a failure between the delete
// and the puts leaves the other exchanges without permissions (the error
// names them).
func clearTopicPermissions(x *invocation, args []string) error {
	name, vhost := args[0], x.opts.vhost
	path := []string{"topic-permissions", vhost, name}
	notFound := noObject(`User "` + name + `" has no topic permissions in vhost "` + vhost + `"`)
	if len(args) == 1 {
		x.info(`Clearing topic permissions for user "%s" in vhost "%s" ...`, name, vhost)
		return x.api.call(x.ctx, request{method: http.MethodDelete, path: path, notFound: notFound})
	}
	exchange := args[1]
	x.info(`Clearing topic permissions on "%s" for user "%s" in vhost "%s" ...`, exchange, name, vhost)
	var all []topicPermission
	if err := x.api.call(x.ctx, request{method: http.MethodGet, path: path, out: &all, notFound: notFound}); err != nil {
		return err
	}
	var keep []topicPermission
	found := false
	for _, p := range all {
		if p.Exchange == exchange {
			found = true
		} else {
			keep = append(keep, p)
		}
	}
	if !found {
		return nil
	}
	if err := x.api.call(x.ctx, request{method: http.MethodDelete, path: path, notFound: notFound}); err != nil {
		return err
	}
	for i, p := range keep {
		if err := x.api.call(x.ctx, request{method: http.MethodPut, path: path, body: p}); err != nil {
			var lost []string
			for _, q := range keep[i:] {
				lost = append(lost, q.Exchange)
			}
			return errors.Join(err, &exitError{code: exitCodeFor(err),
				msg: `topic permissions of user "` + name + `" on these exchanges were removed and not restored: ` + strings.Join(lost, ", ")})
		}
	}
	return nil
}
