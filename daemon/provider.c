/* provider.c — dispatch of the provider interface to each backend's ops. */
#include "provider.h"

int provider_call_start(Provider *p, const ProviderRequest *req, const ProviderCallbacks *cb, void *userdata,
                        ProviderCall **ret) {
        if (!p || !req || !cb || !cb->on_done || !ret)
                return -EINVAL;
        return p->ops->call_start(p, req, cb, userdata, ret);
}

void provider_call_cancel(Provider *p, ProviderCall *call) {
        if (p && call)
                p->ops->call_cancel(call);
}

Provider *provider_free(Provider *p) {
        if (p)
                p->ops->free(p);
        return NULL;
}
