/* curl-glue.h — libcurl multi driven by an sd-event loop, the way systemd's
 * src/import/curl-util.c does it: curl's sockets become io sources, its
 * timer a one-shot time source, and finished transfers are handed to a
 * per-handle completion callback from a defer source, never from inside a
 * libcurl callback (so the callback may remove, free or re-add handles). */
#pragma once

#include <curl/curl.h>
#include <systemd/sd-event.h>

typedef struct CurlGlue CurlGlue;

/**
 * CurlGlueDone - a transfer finished. The handle has already been removed
 * from the multi and is the caller's again: it may be freed with
 * curl_easy_cleanup() or re-added with curl_glue_add().
 */
typedef void (*CurlGlueDone)(CurlGlue *g, CURL *easy, CURLcode result, void *userdata);

/**
 * curl_glue_new() - a new curl multi handle attached to @e (referenced).
 * @description names the glue's event sources (e.g. "openai-vllm");
 * NULL means "curl". Returns 0 and *ret, or -ENOMEM / -EIO.
 */
int curl_glue_new(sd_event *e, const char *description, CurlGlue **ret);

/**
 * curl_glue_free() - free the glue and its event sources. Transfers still
 * added are removed from the multi without callbacks; the easy handles
 * themselves stay the caller's. NULL is a no-op. Returns NULL.
 */
CurlGlue *curl_glue_free(CurlGlue *g);

/**
 * curl_glue_add() - start @easy; @done runs once when it finishes. The glue
 * uses CURLOPT_PRIVATE of @easy, callers must not. Returns 0, -EINVAL,
 * -ENOMEM or -EIO (curl refused the handle; @done will not run).
 */
int curl_glue_add(CurlGlue *g, CURL *easy, CurlGlueDone done, void *userdata);

/**
 * curl_glue_remove() - cancel @easy: removed from the multi, its callback
 * will not run. The handle stays the caller's. Must not be called from
 * inside a libcurl callback (write/header functions). Unknown handles and
 * NULL are ignored.
 */
void curl_glue_remove(CurlGlue *g, CURL *easy);

/** curl_glue_multi() - the underlying multi handle, e.g. for options. */
CURLM *curl_glue_multi(CurlGlue *g);

/** curl_glue_n_transfers() - number of transfers currently added. */
unsigned curl_glue_n_transfers(const CurlGlue *g);
