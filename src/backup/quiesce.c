/* The guest's filesystems frozen through the qemu guest agent while the backup job starts, and
 * thawed right after (virtbackup(1) -F, --freeze-timeout). A domain without a connected agent,
 * or an agent that fails or does not answer within the timeout, is backed up unfrozen
 * (consistent like after a power loss) with a warning; the backup itself never fails here. */
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>

#include "domxml.h"
#include "log.h"
#include "run_internal.h"

#define AGENT_CHANNEL "org.qemu.guest_agent.0"

enum agent_state { AGENT_NONE, AGENT_DISCONNECTED, AGENT_CONNECTED };

/* From the live XML: the agent's virtio-serial channel and whether the guest has opened it
 * (libvirt's state='connected'|'disconnected'; no state attribute counts as connected, the
 * agent's answer then tells). */
static enum agent_state agent_state(virDomainPtr dom)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml)
        return AGENT_NONE;
    struct vb_error e = {0};
    struct domxml *d = domxml_parse(xml, strlen(xml), &e);
    free(xml);
    if (!d)
        return AGENT_NONE;
    enum agent_state st = AGENT_NONE;
    xmlNodePtr devices = domxml_child(xmlDocGetRootElement(domxml_doc(d)), "devices");
    for (xmlNodePtr c = devices ? devices->children : NULL; c && st == AGENT_NONE; c = c->next) {
        xmlNodePtr t = domxml_is_elem(c, "channel") ? domxml_child(c, "target") : NULL;
        xmlChar *name = t ? xmlGetProp(t, BAD_CAST "name") : NULL;
        if (name && strcmp((const char *)name, AGENT_CHANNEL) == 0) {
            xmlChar *state = xmlGetProp(t, BAD_CAST "state");
            st = state && strcmp((const char *)state, "disconnected") == 0 ? AGENT_DISCONNECTED
                                                                           : AGENT_CONNECTED;
            xmlFree(state);
        }
        xmlFree(name);
    }
    domxml_free(d);
    return st;
}

static void mountpoints_free(char **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The -F list split at commas (empty items skipped); *n is 0 for "all filesystems". NULL
 * with *n 0 when memory runs out. */
static char **mountpoints(const char *list, unsigned *n)
{
    *n = 0;
    if (!list)
        return NULL;
    size_t items = 1;
    for (const char *p = list; *p; p++)
        items += *p == ',';
    char **v = calloc(items, sizeof *v);
    if (!v)
        return NULL;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (!(v[*n] = strndup(p, len))) {
                mountpoints_free(v, *n);
                *n = 0;
                return NULL;
            }
            (*n)++;
        }
        p += len + (p[len] == ',');
    }
    return v;
}

void quiesce_freeze(struct backup_run *r, struct quiesce *q)
{
    q->frozen = q->unanswered = false;
    int state, reason;
    if (virDomainGetState(r->dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_RUNNING)
        return;
    switch (agent_state(r->dom)) {
    case AGENT_NONE:
        vb_warn("domain %s has no guest agent: its filesystems are not frozen, the backup is "
                "consistent like after a power loss",
                r->info.name);
        return;
    case AGENT_DISCONNECTED:
        vb_warn("the guest agent of domain %s is not connected (not running in the guest?): "
                "its filesystems are not frozen, the backup is consistent like after a power loss",
                r->info.name);
        return;
    case AGENT_CONNECTED:
        break;
    }
    if (virDomainAgentSetResponseTimeout(r->dom, r->o->freeze_timeout, 0) < 0)
        vb_warn("cannot set the guest agent's timeout to %d s: %s", r->o->freeze_timeout,
                vb_virt_last_error());
    unsigned nm = 0;
    char **mounts = mountpoints(r->o->freeze, &nm);
    if (r->o->freeze && !mounts) {
        vb_warn("out of memory: the guest's filesystems are not frozen");
        return;
    }
    int n = virDomainFSFreeze(r->dom, nm ? (const char **)mounts : NULL, nm, 0);
    mountpoints_free(mounts, nm);
    if (n >= 0) {
        vb_info("froze %d guest filesystem(s)", n);
        q->frozen = true;
        return;
    }
    const virError *e = virGetLastError();
    if (e && e->code == VIR_ERR_AGENT_UNRESPONSIVE) {
        /* the agent may still carry the freeze out later: quiesce_thaw undoes that */
        q->unanswered = true;
        vb_warn("the guest agent did not answer the freeze within %d s (%s): the filesystems are "
                "not frozen, the backup is consistent like after a power loss",
                r->o->freeze_timeout, vb_virt_last_error());
    } else {
        vb_warn("cannot freeze the guest's filesystems (guest agent): %s; the backup is "
                "consistent like after a power loss",
                vb_virt_last_error());
    }
}

void quiesce_thaw(struct backup_run *r, const struct quiesce *q)
{
    if (!q->frozen && !q->unanswered)
        return;
    int n = virDomainFSThaw(r->dom, NULL, 0, 0);
    if (n < 0) {
        if (q->frozen)
            vb_warn("cannot thaw the guest's filesystems: %s; if they stay frozen, "
                    "'virsh domfsthaw %s' thaws them",
                    vb_virt_last_error(), r->info.name);
        else
            vb_warn("the guest agent does not answer the thaw either (%s): if it freezes the "
                    "filesystems late, 'virsh domfsthaw %s' thaws them",
                    vb_virt_last_error(), r->info.name);
        return;
    }
    if (q->frozen)
        vb_info("thawed %d guest filesystem(s)", n);
    else if (n > 0)
        vb_warn("the guest agent froze %d filesystem(s) after the timeout: thawed them", n);
}
