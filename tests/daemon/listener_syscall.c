/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper for daemon.listener, preloaded (LD_PRELOAD) into keymgrd and so into the
 * listener it starts: in keymgrd-listener only, SIGUSR1 makes the process call socket(2),
 * a system call outside the listener's seccomp allow-list. The test sends SIGUSR1 and checks
 * that the kernel kills the listener (SIGSYS) and that keymgrd starts another.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void on_usr1(int sig)
{
	(void)sig;
	int saved = errno;
	long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	if (fd >= 0)
		close((int)fd);   /* not confined (a build without seccomp): nothing happens */
	errno = saved;
}

__attribute__((constructor)) static void init(void)
{
	if (strstr(program_invocation_short_name, "-listener") == NULL)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
}
