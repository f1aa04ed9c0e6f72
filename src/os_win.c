/*
 * os_win.c - os.h for Windows (Win32 API through mingw-w64's msvcrt).
 *
 * The one piece of file-scope mutable state in the C core is here: a
 * console control handler gets no context pointer, so Ctrl-C / Ctrl-Break
 * set `interrupt_flag` and everything else polls it, as the POSIX side
 * polls its blocked, pending SIGINT.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <direct.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <windows.h>
#include <psapi.h>

static volatile LONG interrupt_flag; /* see the file comment */

static BOOL WINAPI on_console_ctrl(DWORD type)
{
	if (type == CTRL_C_EVENT || type == CTRL_BREAK_EVENT) {
		InterlockedExchange(&interrupt_flag, 1);
		return TRUE; /* handled: the polling code ends the run (exit 130) */
	}
	return FALSE;
}

void ncp_os_init(struct ncp_os_state *st)
{
	SetConsoleCtrlHandler(on_console_ctrl, TRUE);
	/* files are bytes: no CR added to "\n" on stdout/stderr or by fopen */
	_setmode(0, _O_BINARY);
	_setmode(1, _O_BINARY);
	_setmode(2, _O_BINARY);
	_fmode = _O_BINARY;
	st->console_cp = GetConsoleOutputCP(); /* 0 without a console */
	if (st->console_cp)
		SetConsoleOutputCP(CP_UTF8);
	timeBeginPeriod(1); /* 1 ms sleeps instead of the 15.6 ms default tick */
}

void ncp_os_done(const struct ncp_os_state *st)
{
	/* the console outlives us: give it back the code page it had */
	if (st->console_cp && st->console_cp != CP_UTF8)
		SetConsoleOutputCP(st->console_cp);
	timeEndPeriod(1);
}

double ncp_now(void)
{
	LARGE_INTEGER f, c;
	QueryPerformanceFrequency(&f);
	QueryPerformanceCounter(&c);
	return (double)c.QuadPart / (double)f.QuadPart;
}

void ncp_nap(double s)
{
	if (s > 0)
		Sleep((DWORD)(s * 1000 + 0.5));
}

int ncp_interrupt_pending(void)
{
	return InterlockedCompareExchange(&interrupt_flag, 0, 0) != 0;
}

void ncp_interrupt_consume(void)
{
	InterlockedExchange(&interrupt_flag, 0);
}

/* errno for a Win32 error code (the common ones; EIO otherwise) */
static int win_errno(DWORD e)
{
	switch (e) {
	case ERROR_FILE_NOT_FOUND:
	case ERROR_PATH_NOT_FOUND:
	case ERROR_INVALID_DRIVE:
	case ERROR_BAD_NETPATH:
		return ENOENT;
	case ERROR_ACCESS_DENIED:
		return EACCES;
	case ERROR_SHARING_VIOLATION:
	case ERROR_LOCK_VIOLATION:
		return EBUSY;
	case ERROR_ALREADY_EXISTS:
	case ERROR_FILE_EXISTS:
		return EEXIST;
	case ERROR_NOT_ENOUGH_MEMORY:
	case ERROR_OUTOFMEMORY:
		return ENOMEM;
	case ERROR_INVALID_NAME:
	case ERROR_INVALID_PARAMETER:
		return EINVAL;
	case ERROR_BAD_EXE_FORMAT:
		return ENOEXEC;
	default:
		return EIO;
	}
}

static int fail_win(void)
{
	errno = win_errno(GetLastError());
	return -1;
}

/* ---- processes ---- */

/* Appends arg to the command line quoted the way the C runtime's argv
 * parser reads it back (backslashes are literal except before a quote). */
static int quote_arg(char *out, size_t cap, size_t *len, const char *arg)
{
#define PUT(ch) do { if (*len + 1 >= cap) return -1; out[(*len)++] = (ch); } while (0)
	if (*len)
		PUT(' ');
	if (arg[0] && !strpbrk(arg, " \t\n\v\"")) {
		for (const char *s = arg; *s; s++)
			PUT(*s);
		out[*len] = '\0';
		return 0;
	}
	PUT('"');
	for (const char *s = arg;; s++) {
		size_t bs = 0;
		while (*s == '\\') {
			bs++;
			s++;
		}
		if (!*s) {
			for (size_t i = 0; i < 2 * bs; i++)
				PUT('\\');
			break;
		}
		if (*s == '"') {
			for (size_t i = 0; i < 2 * bs + 1; i++)
				PUT('\\');
		} else {
			for (size_t i = 0; i < bs; i++)
				PUT('\\');
		}
		PUT(*s);
	}
	PUT('"');
	out[*len] = '\0';
	return 0;
#undef PUT
}

/* An inheritable handle for a child's standard stream. */
static HANDLE std_handle(const char *path, int fd, int append)
{
	SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
	HANDLE h;

	if (!path) {
		HANDLE cur = GetStdHandle(fd == 0 ? STD_INPUT_HANDLE :
					  fd == 1 ? STD_OUTPUT_HANDLE : STD_ERROR_HANDLE);
		if (cur == NULL || cur == INVALID_HANDLE_VALUE ||
		    !DuplicateHandle(GetCurrentProcess(), cur, GetCurrentProcess(),
				     &h, 0, TRUE, DUPLICATE_SAME_ACCESS))
			return INVALID_HANDLE_VALUE;
		return h;
	}
	if (strcmp(path, "null") == 0)
		path = "NUL";
	if (fd == 0)
		return CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
				   &sa, OPEN_EXISTING, 0, NULL);
	h = CreateFileA(path, append ? FILE_APPEND_DATA : GENERIC_WRITE,
			FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, &sa,
			append ? OPEN_ALWAYS : CREATE_ALWAYS, 0, NULL);
	return h;
}

static void message(char *err, size_t errlen, const char *what, DWORD e)
{
	char m[256];
	DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
				 NULL, e, 0, m, sizeof m, NULL);
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == '\r' || m[n - 1] == '.'))
		m[--n] = '\0';
	snprintf(err, errlen, "%s: %s", what, n ? m : "cannot start");
}

int ncp_spawn(const struct ncp_child *c, long long *id, char *err, size_t errlen)
{
	char cmd[32768];
	size_t len = 0;
	const char *what = c->shell ? "cmd.exe" : c->argv[0];

	cmd[0] = '\0';
	if (c->shell) {
		/* cmd /s /c "LINE": cmd strips the outer quotes and runs LINE
		 * as typed; no C-runtime quoting inside */
		const char *comspec = getenv("COMSPEC");
		int n = snprintf(cmd, sizeof cmd, "\"%s\" /d /s /c \"%s\"",
				 comspec && *comspec ? comspec : "cmd.exe", c->shell);
		if (n < 0 || (size_t)n >= sizeof cmd) {
			snprintf(err, errlen, "command line too long");
			return E2BIG;
		}
	} else {
		for (const char *const *a = c->argv; *a; a++)
			if (quote_arg(cmd, sizeof cmd, &len, *a) < 0) {
				snprintf(err, errlen, "%s: command line too long", what);
				return E2BIG;
			}
	}
	HANDLE h[3];
	h[0] = std_handle(c->in, 0, 0);
	h[1] = std_handle(c->out, 1, c->append);
	if (c->err && c->out && strcmp(c->err, c->out) == 0 && h[1] != INVALID_HANDLE_VALUE) {
		/* one file, one offset */
		if (!DuplicateHandle(GetCurrentProcess(), h[1], GetCurrentProcess(), &h[2], 0,
				     TRUE, DUPLICATE_SAME_ACCESS))
			h[2] = INVALID_HANDLE_VALUE;
	} else {
		h[2] = std_handle(c->err, 2, c->append);
	}
	for (int i = 0; i < 3; i++)
		if (h[i] == INVALID_HANDLE_VALUE) {
			DWORD e = GetLastError();
			const char *p = i == 0 ? c->in : i == 1 ? c->out : c->err;
			for (int k = 0; k < 3; k++)
				if (h[k] != INVALID_HANDLE_VALUE)
					CloseHandle(h[k]);
			message(err, errlen, p ? p : "standard stream", e);
			return win_errno(e);
		}
	/* The child inherits exactly these three handles, not every
	 * inheritable handle of ncpflash (open journals, the port). */
	STARTUPINFOEXA si;
	memset(&si, 0, sizeof si);
	si.StartupInfo.cb = sizeof si;
	si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
	si.StartupInfo.hStdInput = h[0];
	si.StartupInfo.hStdOutput = h[1];
	si.StartupInfo.hStdError = h[2];
	SIZE_T asz = 0;
	char abuf[256];
	DWORD flags = 0;
	InitializeProcThreadAttributeList(NULL, 1, 0, &asz);
	if (asz <= sizeof abuf) {
		si.lpAttributeList = (LPPROC_THREAD_ATTRIBUTE_LIST)abuf;
		HANDLE list[3] = {h[0], h[1], h[2]};
		int n = 3;
		if (InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &asz) &&
		    UpdateProcThreadAttribute(si.lpAttributeList, 0,
					      PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list,
					      (SIZE_T)n * sizeof(HANDLE), NULL, NULL))
			flags |= EXTENDED_STARTUPINFO_PRESENT;
		else
			si.lpAttributeList = NULL;
	}
	PROCESS_INFORMATION pi;
	BOOL ok = CreateProcessA(NULL, cmd, NULL, NULL, TRUE, flags, NULL, NULL,
				 &si.StartupInfo, &pi);
	DWORD e = GetLastError();
	if (si.lpAttributeList)
		DeleteProcThreadAttributeList(si.lpAttributeList);
	for (int i = 0; i < 3; i++)
		CloseHandle(h[i]);
	if (!ok) {
		message(err, errlen, what, e);
		return win_errno(e);
	}
	CloseHandle(pi.hThread);
	*id = (long long)(intptr_t)pi.hProcess;
	return 0;
}

static double filetime_s(FILETIME t)
{
	return (double)(((unsigned long long)t.dwHighDateTime << 32) | t.dwLowDateTime) / 1e7;
}

int ncp_wait(long long id, int *status, struct ncp_usage *u)
{
	HANDLE h = (HANDLE)(intptr_t)id;
	DWORD r = WaitForSingleObject(h, 0);

	if (r == WAIT_TIMEOUT)
		return 0;
	if (r != WAIT_OBJECT_0)
		return fail_win();
	DWORD code = 1;
	GetExitCodeProcess(h, &code);
	*status = (int)code;
	FILETIME c0, e0, k, us;
	memset(u, 0, sizeof *u);
	if (GetProcessTimes(h, &c0, &e0, &k, &us)) {
		u->utime = filetime_s(us);
		u->stime = filetime_s(k);
	}
	PROCESS_MEMORY_COUNTERS pm;
	if (GetProcessMemoryInfo(h, &pm, sizeof pm))
		u->maxrss_kib = (long long)(pm.PeakWorkingSetSize / 1024);
	CloseHandle(h);
	return 1;
}

int ncp_kill(long long id, int how)
{
	static const UINT codes[] = {128 + 15, 128 + 9, 128 + 2};
	return TerminateProcess((HANDLE)(intptr_t)id, codes[how < 0 || how > 2 ? 0 : how])
		       ? 0 : fail_win();
}

int ncp_getpid(void)
{
	return (int)GetCurrentProcessId();
}

/* ---- pipes ---- */

static void no_inherit(int fd)
{
	SetHandleInformation((HANDLE)_get_osfhandle(fd), HANDLE_FLAG_INHERIT, 0);
}

int ncp_pipe(int fds[2])
{
	return _pipe(fds, 65536, _O_BINARY | _O_NOINHERIT);
}

/* Bytes waiting in a pipe: > 0, 0 none, -1 at EOF (writer gone). */
static long pipe_avail(int fd)
{
	DWORD avail = 0;
	if (!PeekNamedPipe((HANDLE)_get_osfhandle(fd), NULL, 0, NULL, &avail, NULL))
		return -1; /* ERROR_BROKEN_PIPE: the write end is closed */
	return (long)avail;
}

long ncp_pipe_read(int fd, void *buf, size_t n)
{
	long a = pipe_avail(fd);
	if (a < 0)
		return 0;
	if (a == 0) {
		errno = EAGAIN;
		return -1;
	}
	if ((size_t)a < n)
		n = (size_t)a;
	return _read(fd, buf, (unsigned)n);
}

int ncp_pipe_wait(const int *fds, int n, double timeout)
{
	double deadline = ncp_now() + (timeout > 0 ? timeout : 0);
	for (;;) {
		int ready = 0;
		for (int i = 0; i < n; i++)
			if (pipe_avail(fds[i]) != 0)
				ready++;
		if (ready || ncp_now() >= deadline)
			return ready;
		Sleep(2);
	}
}

int ncp_dup(int fd)
{
	int d = _dup(fd);
	if (d >= 0)
		no_inherit(d);
	return d;
}

/* ---- files ---- */

int ncp_open(const char *path, int flags, int mode)
{
	return _open(path, flags | _O_NOINHERIT | _O_BINARY, mode);
}

int ncp_trylock(int fd)
{
	OVERLAPPED ov;
	memset(&ov, 0, sizeof ov);
	if (LockFileEx((HANDLE)_get_osfhandle(fd),
		       LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov))
		return 0;
	return GetLastError() == ERROR_LOCK_VIOLATION ? 1 : fail_win();
}

void ncp_unlock(int fd)
{
	OVERLAPPED ov;
	memset(&ov, 0, sizeof ov);
	UnlockFileEx((HANDLE)_get_osfhandle(fd), 0, 1, 0, &ov);
}

int ncp_replace(const char *from, const char *to)
{
	return MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)
		       ? 0 : fail_win();
}

int ncp_mkdir(const char *path)
{
	return _mkdir(path);
}

char *ncp_realpath(const char *path)
{
	HANDLE h = CreateFileA(path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
			       NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		fail_win();
		return NULL;
	}
	char buf[MAX_PATH * 4];
	DWORD n = GetFinalPathNameByHandleA(h, buf, sizeof buf,
					    FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
	CloseHandle(h);
	if (n == 0 || n >= sizeof buf) {
		/* no final path (some network drives): the full path */
		return _fullpath(NULL, path, 0);
	}
	if (strncmp(buf, "\\\\?\\UNC\\", 8) == 0) { /* \\?\UNC\server\share -> \\server\share */
		char *r = malloc(strlen(buf + 8) + 3);
		if (r) {
			r[0] = r[1] = '\\';
			strcpy(r + 2, buf + 8);
		}
		return r;
	}
	return _strdup(strncmp(buf, "\\\\?\\", 4) == 0 ? buf + 4 : buf);
}

int ncp_is_sep(char c)
{
	return c == '/' || c == '\\';
}

int ncp_isatty(int fd)
{
	DWORD mode;
	HANDLE h = (HANDLE)_get_osfhandle(fd);
	return h != INVALID_HANDLE_VALUE && GetFileType(h) == FILE_TYPE_CHAR &&
	       GetConsoleMode(h, &mode);
}

int ncp_term_cols(void)
{
	CONSOLE_SCREEN_BUFFER_INFO ci;
	if (GetConsoleScreenBufferInfo(GetStdHandle(STD_ERROR_HANDLE), &ci) ||
	    GetConsoleScreenBufferInfo(GetStdHandle(STD_OUTPUT_HANDLE), &ci))
		return ci.srWindow.Right - ci.srWindow.Left + 1;
	return 0;
}
