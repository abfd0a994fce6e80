/* The deploy report crossing the pipe from the worker to PID 1: exactly one
 * whole report or none, through partial writes and EINTR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "report/report_pipe.h"

static void sample(struct deploy_report *r)
{
    report_init(r);
    r->exit_code = 65;
    r->statements = 1234567;
    report_add_error(r, "schema-file", "42601", "syntax error at line %d", 7);
}

static void wait_child(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Forks a writer that sends `bytes` bytes of a sample report (the whole of
 * it `copies` times when bytes is 0) and exits; returns the read end once
 * it has. */
static int written_by_child(size_t bytes, int copies)
{
    int fds[2];
    assert_int_equal(report_pipe_open(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct deploy_report r;
        sample(&r);
        int ok = 1;
        for (int i = 0; i < copies; i++)
            ok &= report_pipe_send(fds[1], &r) == 0;
        if (bytes)
            ok &= write(fds[1], &r, bytes) == (ssize_t)bytes;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    wait_child(pid);
    return fds[0];
}

static void test_one_whole_report(void **state)
{
    (void)state;
    struct deploy_report got, want;
    sample(&want);
    int fd = written_by_child(0, 1);
    assert_int_equal(report_pipe_receive(fd, &got), 1);
    close(fd);
    assert_memory_equal(&got, &want, sizeof want);
}

static void test_no_report(void **state)
{
    (void)state;
    struct deploy_report got;
    int fd = written_by_child(0, 0);
    assert_int_equal(report_pipe_receive(fd, &got), 0);
    close(fd);
}

static void test_a_report_cut_short_is_none(void **state)
{
    (void)state;
    struct deploy_report got;
    static const size_t parts[] = {1, sizeof got / 2, sizeof got - 1};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int fd = written_by_child(parts[i], 0);
        assert_int_equal(report_pipe_receive(fd, &got), -1);
        close(fd);
    }
}

static void test_more_than_one_report_is_none(void **state)
{
    (void)state;
    struct deploy_report got;
    int fd = written_by_child(0, 2);
    assert_int_equal(report_pipe_receive(fd, &got), -1);
    close(fd);
    fd = written_by_child(1, 1);
    assert_int_equal(report_pipe_receive(fd, &got), -1);
    close(fd);
}

static void test_the_pipe_holds_a_whole_report(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(report_pipe_open(fds), 0);
    assert_true(fcntl(fds[1], F_GETPIPE_SZ) >= (int)sizeof(struct deploy_report));
    assert_true(fcntl(fds[0], F_GETFL) & O_NONBLOCK);      /* PID 1 never hangs on it */
    assert_false(fcntl(fds[1], F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);        /* the app never gets it */
    assert_true(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
    close(fds[0]);
    close(fds[1]);
}

static void on_alarm(int sig) { (void)sig; }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A full pipe makes the send wait; a signal handler (no SA_RESTART) runs
 * meanwhile and interrupts the write: the send goes on once there is room. */
static void test_send_survives_eintr(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(report_pipe_open(fds), 0);
    int room = fcntl(fds[1], F_SETPIPE_SZ, (int)sizeof(struct deploy_report));
    assert_true(room >= (int)sizeof(struct deploy_report));
    char filler[4096];
    memset(filler, 'x', sizeof filler);
    for (int left = room; left > 0;) {
        ssize_t n = write(fds[1], filler, left < (int)sizeof filler ? (size_t)left : sizeof filler);
        assert_true(n > 0);
        left -= (int)n;
    }
    pid_t reader = fork();
    assert_true(reader >= 0);
    if (reader == 0) { /* drains the filler, late; the report stays in the pipe */
        sleep_ms(300);
        for (int left = room; left > 0;) {
            ssize_t n = read(fds[0], filler, left < (int)sizeof filler ? (size_t)left : sizeof filler);
            if (n > 0)
                left -= (int)n;
            else if (n < 0 && errno != EAGAIN)
                _exit(1);
        }
        _exit(0);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* sa_flags 0: no SA_RESTART */
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval once = {{0, 0}, {0, 50000}};
    assert_int_equal(setitimer(ITIMER_REAL, &once, NULL), 0);

    struct deploy_report want, got;
    sample(&want);
    int sent = report_pipe_send(fds[1], &want);
    signal(SIGALRM, SIG_DFL);
    assert_int_equal(sent, 0);
    close(fds[1]);
    wait_child(reader);
    assert_int_equal(report_pipe_receive(fds[0], &got), 1);
    assert_memory_equal(&got, &want, sizeof want);
    close(fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_whole_report),
        cmocka_unit_test(test_no_report),
        cmocka_unit_test(test_a_report_cut_short_is_none),
        cmocka_unit_test(test_more_than_one_report_is_none),
        cmocka_unit_test(test_the_pipe_holds_a_whole_report),
        cmocka_unit_test(test_send_survives_eintr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
