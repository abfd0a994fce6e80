#include "webhook.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "clock.h"
#include "cabundle.h"
#include "log.h"
#include "pid1/supervise.h"

#define RETRY_FIRST_MS 100
#define RETRY_CAP_MS 1000

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The answer is of no interest; only its status code is. */
static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* Worth another try? Connection trouble, 429 and 5xx are; a 4xx or a TLS
 * verification failure will not get better. */
static int is_retryable(CURLcode res, long status)
{
    if (res == CURLE_OK)
        return status == 429 || status >= 500;
    return res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
           res == CURLE_SEND_ERROR || res == CURLE_RECV_ERROR || res == CURLE_GOT_NOTHING ||
           res == CURLE_PARTIAL_FILE;
}

static CURL *make_request(const struct config *cfg, const char *body, size_t len,
                          struct curl_slist *headers, char *errbuf)
{
    CURL *curl = curl_easy_init();
    /* libcurl's compiled-in CA path may not exist in the image (scratch). */
    const char *ca = cfg->webhook_ca_file ? cfg->webhook_ca_file : ca_bundle_path();
    if (!curl)
        return NULL;
    curl_easy_setopt(curl, CURLOPT_URL, cfg->webhook_url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    if (ca && ca[0])
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
    return curl;
}

/* curl_slist_append returns NULL on failure and leaves the list as it was:
 * keep it, so that it can still be freed. */
static int append_header(struct curl_slist **list, const char *header)
{
    struct curl_slist *longer = curl_slist_append(*list, header);
    if (!longer)
        return -1;
    *list = longer;
    return 0;
}

long webhook_request_timeout_ms(long deadline_ms, long now_ms)
{
    return deadline_ms > now_ms ? deadline_ms - now_ms : -1;
}

int webhook_post(const struct config *cfg, const char *body, size_t len)
{
    char where[256], errbuf[CURL_ERROR_SIZE], agent[64], last[CURL_ERROR_SIZE + 32] = "";
    long start = monotonic_ms(), deadline = start + cfg->webhook_timeout_ms;
    long delay = RETRY_FIRST_MS, status = 0;
    unsigned int seed = (unsigned int)(getpid() ^ start);
    int attempts = 0, delivered = 0, timed_out = 0;
    CURLcode res = CURLE_OK;

    redact_url(cfg->webhook_url, where, sizeof where);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    snprintf(agent, sizeof agent, "User-Agent: bandage/%s", bandage_version);
    struct curl_slist *headers = NULL;
    if (append_header(&headers, "Content-Type: application/json") != 0 ||
        append_header(&headers, agent) != 0) {
        curl_slist_free_all(headers);
        headers = NULL;
    }
    errbuf[0] = '\0';
    CURL *curl = headers ? make_request(cfg, body, len, headers, errbuf) : NULL;
    if (!curl)
        snprintf(last, sizeof last, "out of memory");
    while (curl) {
        /* One reading of the clock decides both whether to start and the
         * timeout: read twice, the deadline could pass in between and give 0. */
        long timeout = webhook_request_timeout_ms(deadline, monotonic_ms());
        if (timeout < 0) {
            timed_out = 1;
            break;
        }
        attempts++;
        errbuf[0] = '\0';
        status = 0;
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout);
        res = curl_easy_perform(curl);
        if (res == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        delivered = res == CURLE_OK && status >= 200 && status < 300;
        if (res == CURLE_OK)
            snprintf(last, sizeof last, "HTTP %ld", status);
        else
            snprintf(last, sizeof last, "%s", errbuf[0] ? errbuf : curl_easy_strerror(res));
        if (delivered || !is_retryable(res, status))
            break;
        log_debug("webhook %s: %s; retrying", where, last);
        long pause = delay / 2 + (long)(rand_r(&seed) % (unsigned)(delay / 2 + 1));
        long left = deadline - monotonic_ms();
        sleep_ms(pause < left ? pause : (left > 0 ? left : 0));
        delay = delay * 2 < RETRY_CAP_MS ? delay * 2 : RETRY_CAP_MS;
    }
    if (delivered)
        log_info("webhook %s: delivered (%s) in %ld ms", where, last, monotonic_ms() - start);
    else if (timed_out && last[0])
        log_warn("webhook %s: not delivered after %d attempt%s in %ld ms: timed out (last: %s)",
                 where, attempts, attempts == 1 ? "" : "s", monotonic_ms() - start, last);
    else
        log_warn("webhook %s: not delivered after %d attempt%s in %ld ms: %s", where, attempts,
                 attempts == 1 ? "" : "s", monotonic_ms() - start, last[0] ? last : "timed out");
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return delivered ? 0 : -1;
}

pid_t webhook_post_async(const struct config *cfg, const char *body, size_t len)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* An app that crashes at once is when its deploy report matters most:
         * the SIGTERM of PID 1's clean-up must not cut the post short. It ends
         * by itself within --webhook-timeout, or by SIGKILL after --grace. */
        supervise_reset_signals();
        signal(SIGTERM, SIG_IGN);
        _exit(webhook_post(cfg, body, len) == 0 ? 0 : 1);
    }
    if (pid < 0)
        log_warn("webhook: cannot fork the sender; report not sent");
    return pid;
}
