// Package cluster is how troupe nodes find each other and trust each other:
// gossip membership on hashicorp/memberlist, the metadata each node
// publishes, and the cluster key that encrypts gossip and derives the TLS
// credentials for node-to-node traffic.
//
// The core object is Membership. Start it from a Config (DefaultConfig on a
// LAN, LocalConfig on one host), read its Events channel continually, and
// end with Leave then Shutdown:
//
//	cfg := cluster.DefaultConfig()
//	cfg.Seeds = []string{"10.0.0.1:7946"}
//	cfg.KeyFile = "cluster.key"
//	cfg.Meta.RemoteAddr = actorAddr
//	cfg.Meta.DataAddr = endpoint.Addr() // a collective.Endpoint: the ring's data plane
//	m, err := cluster.Start(cfg)
//	...
//	for e := range m.Events() {
//		switch e := e.(type) {
//		case cluster.MemberJoined:
//			// e.Node.Meta.RemoteAddr is its actor endpoint,
//			// e.Node.Meta.DataAddr the address its ring neighbours dial.
//		case cluster.MemberLeft, cluster.MemberFailed:
//		}
//	}
//	// on SIGTERM: m.Leave(time.Second); m.Shutdown()
//
// What the events mean for the world (who trains, who coordinates) is
// decided elsewhere; this package only reports.
//
// # Invariants
//
//   - A node's name, "<host:port>/<incarnation>", is unique per process
//     start: a restarted node is a new member, never the old one come back.
//   - Encoded metadata never exceeds MetaMaxSize: each string has a limit
//     (MetaMaxDeviceLen, MetaMaxAddrLen) and a Meta with all of them at their
//     limits fits exactly. Start refuses metadata over a limit or with a
//     DataAddr that is not "host:port", and DecodeMeta accepts only canonical
//     encodings, none from a node of an older ProtocolVersion.
//   - Without a key, Start listens only on loopback unless Config.Insecure
//     says otherwise. Nodes with different keys never see each other, and
//     their TLS handshakes fail on both sides.
//   - Events of one Membership arrive in memberlist's order; for each member,
//     MemberJoined comes before MemberUpdated, MemberLeft or MemberFailed.
//   - MemberLeft means the member announced its departure (Leave);
//     MemberFailed means failure detection gave up on it.
//
// # Concurrency
//
// Membership's methods are safe for concurrent use. memberlist calls the
// package's delegate from its own goroutines, never concurrently, often
// holding its locks; the delegate only copies the node and appends it to an
// unbounded queue, so it never blocks gossip. One goroutine feeds the queue
// into the Events channel; another re-joins the seeds. Shutdown stops both
// and waits for them; memberlist's own goroutines end shortly after.
//
// # Errors
//
// Sentinel errors, wrapped with detail and matched with errors.Is:
// ErrInvalidConfig (names the field), ErrNoKey, ErrKeyLength,
// ErrKeyEncoding, ErrKeyRequired, ErrMetaTooLarge, ErrMetaCorrupt and
// ErrShutdown. An unreachable seed is not an error of Start (the node keeps
// trying); Join reports it. Metadata of a member that does not decode is
// logged and the member reported with Node.MetaValid false.
package cluster
