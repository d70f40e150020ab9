/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes and constants every datapath header uses. */
#ifndef PORIN_COMMON_H
#define PORIN_COMMON_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "shared.h"

#define NSEC_PER_SEC 1000000000ULL

/* Reserved identity of addresses outside every known prefix. */
#define IDENTITY_WORLD 2

#endif /* PORIN_COMMON_H */
