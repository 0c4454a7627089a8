package mgmt

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/warrenmq/warren/auth"
)

// endpoint is one method of a resource.
type endpoint struct {
	level level
	h     handler
}

// methods are a resource's endpoints by HTTP method.
type methods map[string]endpoint

// route is a registered path: its segments ("{name}" for a wildcard) and
// its handler.
type route struct {
	segs []string
	h    http.HandlerFunc
}

// router matches request paths segment by segment on the escaped path,
// so that a name holding "/" (escaped as %2F, as the vhost "/" always is)
// stays one segment; among matching routes the one with the most literal
// segments wins.
type router struct{ routes []route }

func (rt *router) add(path string, h http.HandlerFunc) {
	rt.routes = append(rt.routes, route{segs: strings.Split(strings.Trim(path, "/"), "/"), h: h})
}

// lookup finds the route for r and sets its path values; nil when none.
func (rt *router) lookup(r *http.Request) http.HandlerFunc {
	raw := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil
		}
		segs[i] = u
	}
	var best *route
	bestScore := -1
	for i := range rt.routes {
		rr := &rt.routes[i]
		if len(rr.segs) != len(segs) {
			continue
		}
		score := 0
		for j, p := range rr.segs {
			if isWildcard(p) {
				continue
			}
			if p != segs[j] {
				score = -1
				break
			}
			score++
		}
		if score > bestScore {
			best, bestScore = rr, score
		}
	}
	if best == nil {
		return nil
	}
	for j, p := range best.segs {
		if isWildcard(p) {
			r.SetPathValue(p[1:len(p)-1], segs[j])
		}
	}
	return best.h
}

func isWildcard(seg string) bool { return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") }

// resource registers the endpoints of a path, each behind authentication
// and its level.
func (s *Server) resource(path string, ms methods) {
	handlers := make(map[string]http.HandlerFunc, len(ms))
	for m, e := range ms {
		handlers[m] = s.wrap(e.level, e.h)
	}
	s.router.add(path, s.byMethod(handlers))
}

// byMethod dispatches a path's requests by method: HEAD as GET, other
// methods 405 with Allow, as RabbitMQ answers them. A request that would
// change something and comes from another site's page is refused first,
// whatever credentials the browser adds to it (see sameOrigin).
func (s *Server) byMethod(handlers map[string]http.HandlerFunc) http.HandlerFunc {
	if get, ok := handlers[http.MethodGet]; ok {
		handlers[http.MethodHead] = get
	}
	allowed := slices.Sorted(maps.Keys(handlers))
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		h, ok := handlers[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method Not Allowed")
			return
		}
		if changes(r) && !sameOrigin(r) {
			s.fail(w, forbidden("cross-origin request refused"))
			return
		}
		h(w, r)
	}
}

func get(l level, h handler) methods { return methods{http.MethodGet: {l, h}} }

// routes registers the API.
func (s *Server) routes() {
	const (
		mg  = levelManagement
		pm  = levelPolicymaker
		mon = levelMonitoring
		adm = levelAdministrator
	)
	s.resource("/api/overview", get(mg, s.overview))
	s.resource("/api/cluster-name", methods{http.MethodGet: {mg, s.clusterName}, http.MethodPut: {adm, s.setClusterName}})
	s.resource("/api/nodes", get(mon, s.nodes))
	s.resource("/api/nodes/{node}", get(mon, s.node))
	s.resource("/api/cluster", get(mon, s.clusterStatus))
	s.resource("/api/cluster/join", methods{http.MethodPost: {adm, s.joinCluster}})
	s.resource("/api/cluster/nodes/{node}", methods{http.MethodDelete: {adm, s.forgetNode}})
	s.resource("/api/nodes/{node}/vm-memory-high-watermark", methods{http.MethodPut: {adm, s.setMemoryWatermark}})
	s.resource("/api/nodes/{node}/disk-free-limit", methods{http.MethodPut: {adm, s.setDiskFreeLimit}})
	s.resource("/api/extensions", get(mg, func(w http.ResponseWriter, _ *http.Request, _ *auth.User) error {
		writeJSON(w, []any{})
		return nil
	}))
	s.resource("/api/whoami", get(mg, s.whoami))
	// The console's login (session.go): it authenticates by itself.
	s.router.add("/api/session", s.byMethod(map[string]http.HandlerFunc{
		http.MethodPost: s.startSession, http.MethodGet: s.currentSession, http.MethodDelete: s.endSession,
	}))

	s.resource("/api/connections", get(mg, s.listConnections))
	s.resource("/api/vhosts/{vhost}/connections", get(mg, s.listConnections))
	s.resource("/api/connections/{name}", methods{
		http.MethodGet:    {mg, s.getConnection},
		http.MethodDelete: {mg, s.deleteConnection},
	})
	s.resource("/api/connections/{name}/channels", get(mg, s.listChannels))
	s.resource("/api/channels", get(mg, s.listChannels))
	s.resource("/api/vhosts/{vhost}/channels", get(mg, s.listChannels))
	s.resource("/api/channels/{name}", get(mg, s.getChannel))
	s.resource("/api/consumers", get(mg, s.listConsumers))
	s.resource("/api/consumers/{vhost}", get(mg, s.listConsumers))

	s.resource("/api/exchanges", get(mg, s.listExchanges))
	s.resource("/api/exchanges/{vhost}", get(mg, s.listExchanges))
	s.resource("/api/exchanges/{vhost}/{name}", methods{
		http.MethodGet:    {mg, s.getExchange},
		http.MethodPut:    {mg, s.putExchange},
		http.MethodDelete: {mg, s.deleteExchange},
	})
	s.resource("/api/exchanges/{vhost}/{name}/bindings/source", get(mg, s.exchangeBindings("source")))
	s.resource("/api/exchanges/{vhost}/{name}/bindings/destination", get(mg, s.exchangeBindings("destination")))
	s.resource("/api/exchanges/{vhost}/{name}/publish", methods{http.MethodPost: {mg, s.publish}})

	s.resource("/api/queues", get(mg, s.listQueues))
	s.resource("/api/queues/detailed", get(mg, s.listQueues))
	s.resource("/api/queues/{vhost}", get(mg, s.listQueues))
	s.resource("/api/queues/{vhost}/{name}", methods{
		http.MethodGet:    {mg, s.getQueue},
		http.MethodPut:    {mg, s.putQueue},
		http.MethodDelete: {mg, s.deleteQueue},
	})
	s.resource("/api/queues/{vhost}/{name}/bindings", get(mg, s.queueBindings))
	s.resource("/api/queues/{vhost}/{name}/contents", methods{http.MethodDelete: {mg, s.purgeQueue}})
	s.resource("/api/queues/{vhost}/{name}/get", methods{http.MethodPost: {mg, s.getMessages}})
	s.resource("/api/queues/{vhost}/{name}/move", methods{http.MethodPost: {mg, s.moveMessages}})

	s.resource("/api/bindings", get(mg, s.listBindings))
	s.resource("/api/bindings/{vhost}", get(mg, s.listBindings))
	for _, kind := range []string{"q", "e"} {
		prefix := "/api/bindings/{vhost}/e/{source}/" + kind + "/{destination}"
		s.resource(prefix, methods{
			http.MethodGet:  {mg, s.listBindingsBetween(kind)},
			http.MethodPost: {mg, s.postBinding(kind)},
		})
		s.resource(prefix+"/{props}", methods{
			http.MethodGet:    {mg, s.getBinding(kind)},
			http.MethodDelete: {mg, s.deleteBinding(kind)},
		})
	}

	s.resource("/api/vhosts", get(mg, s.listVhosts))
	s.resource("/api/vhosts/{vhost}", methods{
		http.MethodGet:    {mg, s.getVhost},
		http.MethodPut:    {adm, s.putVhost},
		http.MethodDelete: {adm, s.deleteVhost},
	})
	s.resource("/api/vhosts/{vhost}/permissions", get(adm, s.listPermissions))
	s.resource("/api/vhosts/{vhost}/topic-permissions", get(adm, s.listTopicPermissions))

	s.resource("/api/users", get(adm, s.listUsers))
	s.resource("/api/users/without-permissions", get(adm, s.usersWithoutPermissions))
	s.resource("/api/users/bulk-delete", methods{http.MethodPost: {adm, s.bulkDeleteUsers}})
	s.resource("/api/users/{user}", methods{
		http.MethodGet:    {adm, s.getUser},
		http.MethodPut:    {adm, s.putUser},
		http.MethodDelete: {adm, s.deleteUser},
	})
	s.resource("/api/users/{user}/permissions", get(adm, s.listPermissions))
	s.resource("/api/users/{user}/topic-permissions", get(adm, s.listTopicPermissions))
	s.resource("/api/permissions", get(adm, s.listPermissions))
	s.resource("/api/permissions/{vhost}/{user}", methods{
		http.MethodGet:    {adm, s.getPermission},
		http.MethodPut:    {adm, s.putPermission},
		http.MethodDelete: {adm, s.deletePermission},
	})
	s.resource("/api/topic-permissions", get(adm, s.listTopicPermissions))
	s.resource("/api/topic-permissions/{vhost}/{user}", methods{
		http.MethodGet:    {adm, s.listTopicPermissions},
		http.MethodPut:    {adm, s.putTopicPermission},
		http.MethodDelete: {adm, s.deleteTopicPermissions},
	})

	for _, operator := range []bool{false, true} {
		base, l := "/api/policies", pm
		if operator {
			base, l = "/api/operator-policies", adm
		}
		s.resource(base, get(l, s.listPolicies(operator)))
		s.resource(base+"/{vhost}", get(l, s.listPolicies(operator)))
		s.resource(base+"/{vhost}/{name}", methods{
			http.MethodGet:    {l, s.getPolicy(operator)},
			http.MethodPut:    {l, s.putPolicy(operator)},
			http.MethodDelete: {l, s.deletePolicy(operator)},
		})
	}
	s.resource("/api/vhost-limits", get(mg, s.listVhostLimits))
	s.resource("/api/vhost-limits/{vhost}", get(mg, s.listVhostLimits))
	s.resource("/api/vhost-limits/{vhost}/{name}", methods{
		http.MethodPut:    {adm, s.putVhostLimit},
		http.MethodDelete: {adm, s.deleteVhostLimit},
	})

	s.resource("/api/user-limits", get(adm, s.listUserLimits))
	s.resource("/api/user-limits/{user}", get(adm, s.listUserLimits))
	s.resource("/api/user-limits/{user}/{name}", methods{
		http.MethodPut:    {adm, s.putUserLimit},
		http.MethodDelete: {adm, s.deleteUserLimit},
	})

	s.resource("/api/definitions", methods{
		http.MethodGet:  {adm, s.exportDefinitions},
		http.MethodPost: {adm, s.importDefinitions},
	})
	s.resource("/api/definitions/{vhost}", methods{
		http.MethodGet:  {adm, s.exportDefinitions},
		http.MethodPost: {adm, s.importDefinitions},
	})

	s.resource("/api/health/checks/alarms", get(mg, s.healthAlarms(false)))
	s.resource("/api/health/checks/local-alarms", get(mg, s.healthAlarms(true)))
	s.resource("/api/health/checks/virtual-hosts", get(mg, s.healthOK))
	s.resource("/api/health/checks/node-is-quorum-critical", get(mg, s.quorumCritical))
	s.resource("/api/health/checks/node-is-mirror-sync-critical", get(mg, s.healthOK))
	s.resource("/api/health/checks/port-listener/{port}", get(mg, s.portListener))
	s.resource("/api/health/checks/protocol-listener/{protocol}", get(mg, s.protocolListener))
	s.resource("/api/aliveness-test/{vhost}", get(mg, s.aliveness))

}
