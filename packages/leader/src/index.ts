export * as Lease from "./Lease.js"
