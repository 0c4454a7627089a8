// Package vhost implements a virtual host: the owner of exchanges, queues
// and bindings, with RabbitMQ's declare, delete and bind semantics.
package vhost

// VHost is one virtual host.
type VHost struct {
	name string
}

func newVHost(name string) *VHost {
	return &VHost{name: name}
}

// Name returns the virtual host's name.
func (v *VHost) Name() string { return v.name }
