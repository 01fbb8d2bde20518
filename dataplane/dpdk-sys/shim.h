/* Hand-written shim for what bindgen cannot reach: per-lcore thread-local variables. */
#ifndef TUTTI_DPDK_SHIM_H
#define TUTTI_DPDK_SHIM_H

/* The calling thread's rte_errno (a per-lcore TLS variable in DPDK). */
int tutti_rte_errno(void);

#endif
