/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Finding keymgrd's control socket without a usable configuration (docs/control-protocol.md,
 * "Finding the socket"). keymgrd records where its socket is in a small file next to the
 * store of every environment it serves (STORE.keymgrd, mode 0644, rewritten at start and
 * after each reload); `keymgr status|reload|tick` and the wake-up after a CLI change read
 * those records when the configuration cannot say, so that a broken keymgr.yaml does not cut
 * the operator off from the running daemon.
 */
#pragma once

#include <limits.h>
#include <stddef.h>

#include "keymgr/config/config.h"

#define KM_CTL_RECORD_SUFFIX ".keymgrd"
#define KM_CTL_STATE_DIR "/var/lib/keymgr"        /* systemd's StateDirectory=keymgr */
#define KM_CTL_STATE_DIR_ENV "KEYMGR_STATE_DIR"
#define KM_CTL_RECORD_MAX 8192
#define KM_CTL_SOCKET_MAX 108                      /* sizeof(sun_path) */

/*
 * keymgrd: writes the record of environment env (served from store) atomically to
 * STORE.keymgrd, mode 0644: {"v":1,"env":ENV,"control_socket":PATH,"config":FILE,"pid":N}.
 * Returns KM_EOK, or a negative errno code / KM_ENOMEM with a message naming the file in err.
 */
int km_ctl_record_write(const char *store, const char *env, const char *socket,
                        const char *config, char *err, size_t errlen);

/* A socket found by km_ctl_locate(), and where its path came from (for messages). */
typedef struct {
	char path[KM_CTL_SOCKET_MAX];
	char from[PATH_MAX + 96];
} km_ctl_socket_t;

/*
 * The control socket of the keymgrd that serves configuration file config_path (and
 * environment env, when not NULL), for a client given neither --socket nor
 * $KEYMGR_CONTROL_SOCKET. cfg is the configuration as far as it could be loaded (NULL when
 * it could not be). In order, the first of these that is a socket:
 *   1. daemon.control_socket, when cfg has an intact daemon section;
 *   2. the path in a record of a keymgrd serving config_path (and env): records are looked
 *      for next to the stores of cfg's environments and in the state directory
 *      ($KEYMGR_STATE_DIR, else KM_CTL_STATE_DIR). With no env and several daemons recorded,
 *      the choice is left to the user (KM_EEXIST);
 *   3. KM_CONFIG_DEFAULT_CONTROL_SOCKET, only when cfg cannot say (1. does not apply).
 * Returns KM_EOK (*ret set), KM_ENOENT (no socket: err lists what was tried), KM_EEXIST (err
 * lists the daemons) or KM_ENOMEM.
 */
int km_ctl_locate(const km_config_t *cfg, const char *config_path, const char *env,
                  km_ctl_socket_t *ret, char *err, size_t errlen);
