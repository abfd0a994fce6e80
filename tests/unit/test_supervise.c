/* exit_code_from_status() on real wait statuses: the app's code, or 128+N
 * when signal N killed it (DESIGN.md, "Exit codes"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "exitcodes.h"
#include "pid1/supervise.h"

enum how { EXIT_WITH, RAISE };

/* In the child: default disposition and unblocked, whatever the test runner
 * (cmocka, ASan) installed; no core file. */
static void child_prepare(int sig)
{
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (sig > 0) {
        sigset_t set;
        signal(sig, SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
    }
}

/* Fork a child that exits with code or dies of signal; return its wait status. */
static int status_of(enum how how, int arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (how == EXIT_WITH)
            _exit(arg);
        child_prepare(arg);
        raise(arg);
        _exit(200); /* not reached */
    }
    int status = 0;
    pid_t got;
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    assert_int_equal(got, pid);
    return status;
}

static void test_exit_zero(void **state)
{
    (void)state;
    int st = status_of(EXIT_WITH, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(exit_code_from_status(st), 0);
}

static void test_exit_codes(void **state)
{
    (void)state;
    static const int codes[] = {1, 3, 64, 126, 127, 128, 137, 143, 254, 255};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        int st = status_of(EXIT_WITH, codes[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(exit_code_from_status(st), codes[i]);
    }
    /* only the low 8 bits of _exit's argument survive */
    assert_int_equal(exit_code_from_status(status_of(EXIT_WITH, 256 + 3)), 3);
}

static void test_exit_255(void **state)
{
    (void)state;
    assert_int_equal(exit_code_from_status(status_of(EXIT_WITH, 255)), 255);
}

static void test_killed_by_sigterm(void **state)
{
    (void)state;
    int st = status_of(RAISE, SIGTERM);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    assert_int_equal(exit_code_from_status(st), 143);
}

static void test_killed_by_sigkill(void **state)
{
    (void)state;
    int st = status_of(RAISE, SIGKILL);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(exit_code_from_status(st), 137);
}

static void test_killed_by_other_signals(void **state)
{
    (void)state;
    static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        int st = status_of(RAISE, sigs[i]);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(exit_code_from_status(st), 128 + sigs[i]);
    }
    /* a real-time signal */
    int rt = SIGRTMIN + 2;
    int st = status_of(RAISE, rt);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(exit_code_from_status(st), 128 + rt);
}

static void test_core_dump_flag_ignored(void **state)
{
    (void)state;
    /* the status of a signal death with a core dump (0x80 set): still 128+N */
    int st = SIGSEGV | 0x80;
    assert_true(WIFSIGNALED(st));
    assert_true(WCOREDUMP(st));
    assert_int_equal(exit_code_from_status(st), 128 + SIGSEGV);
}

static void test_stopped_is_internal(void **state)
{
    (void)state;
    /* a stopped (not terminated) child is not an exit: EXIT_INTERNAL, never 0 */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_prepare(SIGSTOP);
        raise(SIGSTOP);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
    assert_true(WIFSTOPPED(st));
    int code = exit_code_from_status(st);
    kill(pid, SIGKILL);
    int reaped;
    assert_int_equal(waitpid(pid, &reaped, 0), pid);
    assert_int_equal(code, EXIT_INTERNAL);
    assert_int_equal(exit_code_from_status(reaped), 137);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_zero),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_exit_255),
        cmocka_unit_test(test_killed_by_sigterm),
        cmocka_unit_test(test_killed_by_sigkill),
        cmocka_unit_test(test_killed_by_other_signals),
        cmocka_unit_test(test_core_dump_flag_ignored),
        cmocka_unit_test(test_stopped_is_internal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
