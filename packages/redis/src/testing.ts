/**
 * What tests of code over Redis need, kept out of the main entry point so that no program loads `node:child_process`
 * for it: a private `redis-server` on a free port (or the one `REDIS_URL` names, under a key prefix of its own).
 */
export * as RedisTestServer from "./RedisTestServer.js"

/**
 * A private Redis Cluster (three masters, three replicas) for tests of cluster mode, with helpers to kill a master
 * and wait for its replica to take over.
 */
export * as RedisTestCluster from "./RedisTestCluster.js"
