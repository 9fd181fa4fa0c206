/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading PKCS#11 modules. A module is initialised once per process, however many
 * km_token_t objects (or km_token_init_dev calls) use it: the registry below counts users,
 * keyed by the dlopen handle (so two spellings of one path share an entry), and the last
 * user finalizes the module if this process initialised it.
 *
 * Some modules only find their token again after C_Finalize + C_Initialize: p11-kit's client
 * (p11-kit-client.so) stays disconnected from a p11-kit server that was restarted, answering
 * every C_GetSlotList with CKR_DEVICE_ERROR, however often sessions are re-opened. So the
 * registry counts the module's failures to find a token in a row (km_p11_module_find_token),
 * and once KM_P11_REINIT_AFTER have failed, the next search first initialises the module
 * again; the callers' backoff (recover.c, keymgrd's) paces these attempts. Sessions of other
 * tokens on the module are gone after it: they answer CKR_SESSION_HANDLE_INVALID (or
 * CKR_CRYPTOKI_NOT_INITIALIZED while it is not initialised) and are re-opened as lost ones.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/internal.h"

#define MAX_SLOT_LOGINS 16
#define KM_P11_REINIT_AFTER 2       /* failed token searches in a row before a re-init */

struct km_p11_module {
	struct km_p11_module *next;
	void *dl;
	CK_FUNCTION_LIST *fl;
	unsigned refs;
	bool initialised_here;          /* false when someone else in the process did C_Initialize */
	bool initialised;               /* false after a re-init whose C_Initialize failed */
	unsigned failures;              /* failed token searches in a row (registry_lock) */
	char *init_args;                /* pReserved given to C_Initialize (NULL: none) */
	struct {
		CK_SLOT_ID slot;
		unsigned users;
	} logins[MAX_SLOT_LOGINS];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static km_p11_module_t *registry;

__attribute__((format(printf, 3, 4)))
static void err(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static bool same_args(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int km_p11_module_get(const char *path, const char *init_args, km_p11_module_t **ret,
                      CK_FUNCTION_LIST **fl_ret, char *errbuf, size_t errlen)
{
	int r = KM_P11_EMODULE;
	void *dl = NULL;
	km_p11_module_t *m = NULL;

	if (path == NULL || path[0] == '\0') {
		err(errbuf, errlen, "no PKCS#11 module path given");
		return KM_P11_EMODULE;
	}

	pthread_mutex_lock(&registry_lock);
	/*
	 * RTLD_NODELETE: modules register thread-local destructors and atexit handlers (SoftHSM
	 * does, through its OpenSSL backend); unmapping them while those are pending crashes at
	 * exit. It also keeps the module's symbols for valgrind's leak report.
	 */
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (dl == NULL) {
		const char *why = dlerror();
		err(errbuf, errlen, "cannot load PKCS#11 module: %s", why ? why : path);
		goto out;
	}
	for (km_p11_module_t *e = registry; e != NULL; e = e->next) {
		if (e->dl == dl) {
			dlclose(dl);      /* the entry keeps its own reference */
			dl = NULL;
			if (!same_args(e->init_args, init_args)) {
				/* C_Initialize runs once per process: the other arguments would be
				 * ignored silently, and another database or token used. */
				err(errbuf, errlen, "PKCS#11 module %s is already initialised in this "
				    "process with other init_args", path);
				goto out;
			}
			e->refs++;
			m = e;
			r = KM_EOK;
			goto out;
		}
	}

	CK_C_GetFunctionList get = NULL;
	*(void **)&get = dlsym(dl, "C_GetFunctionList");
	if (get == NULL) {
		err(errbuf, errlen, "PKCS#11 module %s has no C_GetFunctionList", path);
		goto out;
	}
	CK_FUNCTION_LIST *fl = NULL;
	CK_RV rv = get(&fl);
	if (rv != CKR_OK || fl == NULL) {
		err(errbuf, errlen, "PKCS#11 module %s: C_GetFunctionList failed: %s", path,
		    km_p11_rv_name(rv));
		goto out;
	}

	char *args_copy = NULL;
	if (init_args != NULL && (args_copy = strdup(init_args)) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	/* pReserved: NSS softoken reads its configuration there (and keeps the pointer). */
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK, .pReserved = args_copy };
	rv = fl->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		char op[300];
		snprintf(op, sizeof(op), "PKCS#11 module %s", path);
		km_p11_format_rv(errbuf, errlen, rv, op,
		                 init_args != NULL ? "C_Initialize (with init_args)" :
		                 rv == CKR_ARGUMENTS_BAD ? "C_Initialize (without init_args; does "
		                 "the module need token.init_args?)" : "C_Initialize");
		free(args_copy);
		goto out;
	}

	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		if (rv == CKR_OK)
			fl->C_Finalize(NULL);
		free(args_copy);
		r = KM_ENOMEM;
		goto out;
	}
	m->init_args = args_copy;
	m->dl = dl;
	dl = NULL;
	m->fl = fl;
	m->refs = 1;
	m->initialised_here = (rv == CKR_OK);
	m->initialised = true;
	m->next = registry;
	registry = m;
	r = KM_EOK;
out:
	pthread_mutex_unlock(&registry_lock);
	if (dl != NULL)
		dlclose(dl);
	if (r == KM_EOK) {
		*fl_ret = m->fl;
		*ret = m;
	}
	return r;
}

void km_p11_module_put(km_p11_module_t *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&registry_lock);
	if (--m->refs > 0) {
		pthread_mutex_unlock(&registry_lock);
		return;
	}
	for (km_p11_module_t **pp = &registry; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	if (m->initialised_here && m->initialised)
		m->fl->C_Finalize(NULL);
	dlclose(m->dl);
	free(m->init_args);
	free(m);
	pthread_mutex_unlock(&registry_lock);
}

unsigned km_p11_module_login_ref(km_p11_module_t *m, CK_SLOT_ID slot)
{
	unsigned before = 0;
	int empty = -1;

	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < MAX_SLOT_LOGINS; i++) {
		if (m->logins[i].users > 0 && m->logins[i].slot == slot) {
			before = m->logins[i].users++;
			goto out;
		}
		if (m->logins[i].users == 0 && empty < 0)
			empty = i;
	}
	/* With more than MAX_SLOT_LOGINS tokens, extra ones are simply not counted. */
	if (empty >= 0) {
		m->logins[empty].slot = slot;
		m->logins[empty].users = 1;
	}
out:
	pthread_mutex_unlock(&registry_lock);
	return before;
}

unsigned km_p11_module_login_unref(km_p11_module_t *m, CK_SLOT_ID slot)
{
	unsigned after = 0;

	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < MAX_SLOT_LOGINS; i++) {
		if (m->logins[i].users > 0 && m->logins[i].slot == slot) {
			after = --m->logins[i].users;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return after;
}

/* C_Finalize + C_Initialize with the module's init_args (registry_lock held). */
static int reinit_locked(km_p11_module_t *m, const char *path, char *errbuf, size_t errlen)
{
	if (m->initialised)
		m->fl->C_Finalize(NULL);
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK, .pReserved = m->init_args };
	CK_RV rv = m->fl->C_Initialize(&args);
	m->initialised = rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED;
	if (m->initialised)
		return KM_EOK;
	char op[300];
	snprintf(op, sizeof(op), "PKCS#11 module %s", path);
	return km_p11_format_rv(errbuf, errlen, rv, op, "C_Initialize (initialising the module "
	                        "again after repeated failures)");
}

int km_p11_module_find_token(km_p11_module_t *m, const char *path, const char *label,
                             const char *serial, bool seen, CK_SLOT_ID *slot,
                             CK_TOKEN_INFO *info, char *errbuf, size_t errlen)
{
	int r = KM_EOK;

	pthread_mutex_lock(&registry_lock);
	if (m->failures >= KM_P11_REINIT_AFTER && m->initialised_here)
		r = reinit_locked(m, path, errbuf, errlen);
	pthread_mutex_unlock(&registry_lock);
	if (r == KM_EOK)
		r = km_p11_find_token(m->fl, path, label, serial, slot, info, errbuf, errlen);
	/* A token that is simply not listed counts only when it was there before (seen), or
	 * while the module is failing already (a module initialised again while its server was
	 * away lists no token until it is initialised once more): a misconfigured label must
	 * not re-initialise a module that other tokens use. */
	pthread_mutex_lock(&registry_lock);
	if (r == KM_EOK)
		m->failures = 0;
	else if (r != KM_ENOMEM && r != KM_EINVAL &&
	         (r != KM_P11_ENOTOKEN || seen || m->failures > 0))
		m->failures++;
	pthread_mutex_unlock(&registry_lock);
	return r;
}
