/* Fuzz target: chat-completions request validation (untrusted HTTP body),
 * and the response/SSE builders on whatever it accepted. */
#include <stdint.h>

#include "chat-request.h"
#include "chat-response.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const LimitsConfig limits = {
                .max_body_bytes = 1 << 20, .max_messages = 64, .max_message_bytes = 1 << 16};
        ChatRequest *r = NULL;
        ChatRequestError err;

        if (chat_request_parse((const char *) data, size, &limits, &r, &err) == 0) {
                const char *q = chat_request_query(r);
                free(sse_frame(
                        chat_chunk_new("id", r->model ? r->model : "moa", 0, NULL, q, strlen(q), NULL)));
                chat_request_free(r);
        } else if (err.status != 400 && err.status != 413)
                abort(); /* every refusal is a client error */
        return 0;
}
