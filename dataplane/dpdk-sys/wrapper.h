/* Everything tutti binds from DPDK. Static-inline functions (rte_eth_rx_burst,
 * rte_pktmbuf_alloc, rte_ring_enqueue, ...) are wrapped by bindgen's wrap_static_fns. */
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ring.h>
#include <rte_bus_vdev.h>
#include "shim.h"
