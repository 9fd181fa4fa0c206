/* SPDX-License-Identifier: Apache-2.0 */
/* Which configuration file to read: -c, then $KEYMGR_CONFIG, then the default path. */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/config/config.h"

int km_config_locate(const char *cli_path, char *out, size_t len)
{
	const char *path;
	if (cli_path != NULL) {
		if (*cli_path == '\0')
			return KM_EINVAL;
		path = cli_path;
	} else {
		path = secure_getenv(KM_CONFIG_ENV_VAR);
		if (path == NULL || *path == '\0')
			path = KM_CONFIG_DEFAULT_PATH;
	}
	size_t n = strlen(path);
	if (n >= len)
		return KM_ERANGE;
	memcpy(out, path, n + 1);
	return KM_EOK;
}
