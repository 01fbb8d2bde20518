#include <rte_errno.h>
#include "shim.h"

int tutti_rte_errno(void)
{
	return rte_errno;
}
