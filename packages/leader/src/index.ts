/** Leader election: run an effect only while this process holds a lease. */
export * as LeaderElection from "./LeaderElection.js"

/** Why election failed: bad options, or an unreachable lease store. */
export * from "./LeaderElectionError.js"

/** The lease a leader's effect holds: its token and fencing epoch. */
export * as Lease from "./Lease.js"

/** Where leases live: Redis or memory. */
export * as LeaseStore from "./LeaseStore.js"
