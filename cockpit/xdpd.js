/* xdpd's Cockpit page.
 *
 * Everything shown comes from org.xdp.Manager1 on the system bus: the link
 * and program objects of the ObjectManager at /org/xdp/Manager1 (one
 * GetManagedObjects, again whenever the service starts anew: it exits when
 * idle and is activated again), kept current by its InterfacesAdded and
 * InterfacesRemoved, the objects' PropertiesChanged, and the links'
 * ChainChanged and ForeignProgramDetected. The chain is never polled. Only
 * the programs' Stats property is read periodically while a link counts: the
 * service does not signal it (its EmitsChangedSignal is false, a packet
 * counter changes all the time), and rates need two readings anyway.
 *
 * Changes go through D-Bus with Cockpit's administrative access
 * (superuser: "try"), so polkit authorizes them as for any other client.
 * Adding needs the object's bytes, which the bridge cannot pass as a
 * descriptor: the page runs `xdpctl add IFACE -` (or `replace`) and feeds the
 * file on its standard input; xdpctl hands the service a memfd, and the
 * service checks it like any other object.
 */
"use strict";

const BUS_NAME = "org.xdp.Manager1";
const ROOT = "/org/xdp/Manager1";
const LINK = "org.xdp.Manager1.Link";
const PROGRAM = "org.xdp.Manager1.Program";
const ACTIONS = ["aborted", "drop", "pass", "tx", "redirect"];
const VERDICTS = ["aborted", "drop", "pass", "tx", "redirect", "other"];
const STATS_INTERVAL_MS = 1000;

const client = cockpit.dbus(BUS_NAME, { bus: "system", superuser: "try" });
/* The service's objects, path -> properties (plus .path): kept by sync() and the signals. */
const links = {};
const programs = {};
const permission = cockpit.permission({ admin: true });

const state = {
    ready: false,
    /* link path -> { id, at } of the last ForeignProgramDetected */
    foreign: {},
    /* program path -> { at, stats, rates } */
    stats: {},
    /* uid -> user name */
    users: {},
    alerts: [],
    version: "",
};

/* A D-Bus call as a native promise (a throw in a handler becomes a rejection). */
function call(path, iface, method, args) {
    return new Promise((resolve, reject) => client.call(path, iface, method, args).then(resolve, reject));
}

/* ---- small DOM helpers ---- */

function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
        if (value === undefined || value === null || value === false)
            continue;
        if (key === "class")
            el.className = value;
        else if (key.startsWith("on"))
            el.addEventListener(key.slice(2), value);
        else if (key === "dataset")
            Object.assign(el.dataset, value);
        else if (value === true)
            el.setAttribute(key, "");
        else
            el.setAttribute(key, value);
    }
    for (const child of children.flat()) {
        if (child === undefined || child === null || child === false)
            continue;
        el.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return el;
}

function button(label, attrs) {
    return h("button", Object.assign({ type: "button", class: "xdp-btn xdp-btn-secondary" }, attrs), label);
}

function programId(path) {
    return path.substring(path.lastIndexOf("/") + 1);
}

function owner(uid) {
    const name = state.users[uid];
    return name ? name + " (" + uid + ")" : String(uid);
}

function formatCount(n) {
    if (n >= 1e9) return (n / 1e9).toFixed(1) + " G";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + " M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + " k";
    return String(n);
}

function formatRate(r) {
    if (r === 0) return "0/s";
    if (r >= 1e6) return (r / 1e6).toFixed(1) + " M/s";
    if (r >= 1e3) return (r / 1e3).toFixed(1) + " k/s";
    return (r >= 10 ? r.toFixed(0) : r.toFixed(1)) + "/s";
}

function errorText(ex) {
    /* D-Bus errors carry the service's message; spawn errors xdpctl's stderr. */
    if (!ex) return "unknown error";
    const message = ex.message || ex.problem || String(ex);
    return message.trim();
}

/* ---- alerts ---- */

function addAlert(kind, text) {
    state.alerts.push({ kind, text });
    renderAlerts();
}

function renderAlerts() {
    const box = document.getElementById("alerts");
    const children = [];
    if (!permission.allowed) {
        children.push(h("div", { class: "xdp-alert xdp-alert-info", id: "readonly-notice", role: "status" },
                        h("span", { class: "xdp-alert-text" },
                          h("strong", null, "Read-only: you do not have administrative access. "),
                          "Adding, changing and removing programs, verdict counting and reclaiming an interface " +
                          "are authorized by polkit for administrators. Turn on administrative access " +
                          "(\"Limited access\" in Cockpit's top bar) to use them.")));
    }
    state.alerts.forEach((alert, i) => {
        children.push(h("div", { class: "xdp-alert xdp-alert-" + alert.kind, role: "alert" },
                        h("span", { class: "xdp-alert-text" }, alert.text),
                        h("button", {
                            type: "button",
                            class: "xdp-btn xdp-btn-plain xdp-alert-close",
                            "aria-label": "Dismiss",
                            onclick: () => { state.alerts.splice(i, 1); renderAlerts() },
                        }, "×")));
    });
    box.replaceChildren(...children);
}

/* ---- the page ---- */

function programsOf(link) {
    return (link.Programs || []).map(path => ({ path, p: programs[path] })).filter(x => x.p);
}

function verdictCell(path, counting) {
    const s = state.stats[path];
    if (!s || Object.keys(s.stats).length === 0)
        return h("td", { class: "xdp-verdicts", "data-label": "Verdicts" },
                 h("span", { class: "xdp-muted" }, counting ? "waiting…" : "not counted"));
    const items = VERDICTS.filter(v => (s.stats[v] || 0) > 0 || v === "pass").map(v => {
        const rate = s.rates ? s.rates[v] || 0 : 0;
        return h("span", { class: "xdp-verdict xdp-verdict-" + v, dataset: { verdict: v, count: String(s.stats[v] || 0) } },
                 h("span", { class: "xdp-verdict-name" }, v),
                 " ",
                 h("span", { class: "xdp-verdict-count" }, formatCount(s.stats[v] || 0)),
                 counting ? h("span", { class: "xdp-verdict-rate" }, formatRate(rate)) : null);
    });
    return h("td", { class: "xdp-verdicts", "data-label": "Verdicts" }, items);
}

/* How a member runs, from the link's Linking property ("inline", "call",
 * "not-linked"); while that is not known (a chain adopted after a restart),
 * whether an earlier member ends the chain. */
function runsLabel(how, linked) {
    if (how === "inline")
        return h("span", { class: "xdp-label xdp-label-green", title: "Spliced into the dispatcher: no call" }, "linked, inlined");
    if (how === "call")
        return h("span", { class: "xdp-label xdp-label-green", title: "Run through a BPF-to-BPF call" }, "linked, called");
    if (how === "not-linked" || !linked)
        return h("span", { class: "xdp-label xdp-label-grey", title: "An earlier program ends the chain: this one never runs" }, "not linked");
    return h("span", { class: "xdp-label xdp-label-green", title: "Runs; how is known after the chain's next change" }, "linked");
}

function renderProgramRow(link, entry, position, linked) {
    const p = entry.p;
    const proceed = (p.ProceedOn || []).length ? p.ProceedOn.join(", ") : "none (ends the chain)";
    const admin = permission.allowed;
    const why = admin ? null : "Needs administrative access";
    return h("tr", { class: linked ? "" : "xdp-unlinked", dataset: { path: entry.path, programId: programId(entry.path), name: p.Name, tag: p.Tag } },
             h("td", { "data-label": "Position" }, String(position)),
             h("td", { "data-label": "Priority" }, String(p.Priority)),
             h("td", { "data-label": "Program" },
               h("span", { class: "xdp-program-name" }, p.Name),
               h("span", { class: "xdp-muted xdp-small" }, " id " + programId(entry.path))),
             h("td", { "data-label": "Tag" }, p.Tag || h("span", { class: "xdp-muted" }, "—")),
             h("td", { "data-label": "Owner" }, owner(p.Owner)),
             h("td", { "data-label": "Proceed on" }, proceed),
             h("td", { "data-label": "Runs" }, runsLabel((link.Linking || {})[entry.path], linked)),
             verdictCell(entry.path, link.Counting),
             h("td", { class: "xdp-actions" },
               button("Change…", { class: "xdp-btn xdp-btn-secondary xdp-change", disabled: !admin, title: why, onclick: () => changeDialog(link, entry) }),
               button("Remove", { class: "xdp-btn xdp-btn-danger-secondary xdp-remove", disabled: !admin, title: why, onclick: () => removeDialog(link, entry) })));
}

function foreignNotice(link) {
    const seen = state.foreign[link.path];
    const id = link.ForeignProgramId || (seen ? seen.id : 0);
    if (!id && !seen)
        return null;
    const admin = permission.allowed;
    const hasChain = (link.Programs || []).length > 0;
    let text, what;
    if (id) {
        text = "A program attached by someone else (kernel id " + id + ") holds " + link.Name + ". ";
        what = hasChain
            ? "xdpd's chain is not running. Reclaim attaches the chain again and evicts that program; or find its owner with `bpftool prog show id " + id + "`."
            : "Adding a program here needs \"Take over\" (force), which evicts it; or find its owner with `bpftool prog show id " + id + "`.";
    } else {
        text = "Someone detached xdpd's chain from " + link.Name + " behind the service's back. ";
        what = hasChain ? "Reclaim attaches it again." : "";
    }
    return h("div", { class: "xdp-alert xdp-alert-warning xdp-foreign", role: "alert" },
             h("span", { class: "xdp-alert-text" }, h("strong", null, text), what),
             hasChain
                 ? button("Reclaim", {
                     class: "xdp-btn xdp-btn-warning xdp-reclaim",
                     disabled: !admin,
                     title: admin ? null : "Needs administrative access",
                     onclick: () => act(call(link.path, LINK, "Reclaim", []).then(() => { delete state.foreign[link.path] })),
                 })
                 : null);
}

function renderLink(link) {
    const members = programsOf(link);
    const admin = permission.allowed;
    const why = admin ? null : "Needs administrative access";
    let linked = true;
    const rows = members.map((entry, i) => {
        const row = renderProgramRow(link, entry, i + 1, linked);
        linked = linked && (entry.p.ProceedOn || []).length > 0;
        return row;
    });
    const mode = link.Mode || "";
    const counting = h("label", { class: "xdp-switch", title: why },
                       h("input", {
                           type: "checkbox",
                           class: "xdp-counting",
                           checked: !!link.Counting,
                           disabled: !admin || members.length === 0,
                           onchange: ev => {
                               const on = ev.target.checked;
                               act(call(link.path, LINK, "SetCounting", [on]), () => { ev.target.checked = !on });
                           },
                       }),
                       h("span", { class: "xdp-switch-toggle", "aria-hidden": "true" }),
                       h("span", { class: "xdp-switch-label" }, "Count verdicts"));
    return h("section", { class: "xdp-card xdp-link", dataset: { name: link.Name, index: String(link.Index) } },
             h("header", { class: "xdp-card-header" },
               h("div", { class: "xdp-card-title" },
                 h("h2", null, link.Name),
                 mode ? h("span", { class: "xdp-label xdp-label-blue xdp-mode" }, mode) : h("span", { class: "xdp-label xdp-label-grey xdp-mode" }, "no chain"),
                 h("span", { class: "xdp-muted xdp-small" },
                   "index " + link.Index +
                   (link.KernelProgramId ? " · chain program " + link.KernelProgramId : "") +
                   " · generation " + link.Generation)),
               h("div", { class: "xdp-card-actions" },
                 counting,
                 button("Add program…", {
                     class: "xdp-btn xdp-btn-primary xdp-add",
                     disabled: !admin,
                     title: why,
                     onclick: () => addDialog(link),
                 }))),
             foreignNotice(link),
             members.length === 0
                 ? h("p", { class: "xdp-empty" }, "No programs.")
                 : h("table", { class: "xdp-table", "aria-label": "Chain of " + link.Name },
                     h("thead", null, h("tr", null,
                                        h("th", null, "Pos"), h("th", null, "Priority"), h("th", null, "Program"),
                                        h("th", null, "Tag"), h("th", null, "Owner"), h("th", null, "Proceed on"),
                                        h("th", null, "Runs"), h("th", null, "Verdicts"), h("th", { class: "xdp-actions" }, ""))),
                     h("tbody", null, rows)));
}

let renderQueued = false;

function render() {
    if (renderQueued)
        return;
    renderQueued = true;
    /* One rendering for a burst of signals (a change emits several); a timer, as frames stop in hidden tabs. */
    window.setTimeout(() => {
        renderQueued = false;
        renderNow();
    }, 0);
}

function renderNow() {
    if (!state.ready)
        return;
    const list = Object.keys(links).map(path => links[path]);
    list.sort((a, b) => a.Index - b.Index);
    const box = document.getElementById("links");
    box.replaceChildren(...(list.length ? list.map(renderLink) : [h("p", { class: "xdp-empty" }, "No network interfaces.")]));
    document.getElementById("service-info").textContent = state.version ? "xdpd " + state.version : "";
    document.getElementById("app").setAttribute("aria-busy", "false");
    renderAlerts();
}

/* ---- actions ---- */

function act(promise, undo) {
    return promise.catch(ex => {
        if (undo) undo();
        addAlert("danger", errorText(ex));
    });
}

/* Runs xdpctl with the object's bytes on its standard input; resolves with its
 * output, or fails with its message (which carries the service's), naming the file. */
function xdpctl(args, file) {
    const proc = cockpit.spawn(["xdpctl", "--no-ask-password"].concat(args),
                               { superuser: "try", err: "message", binary: true });
    proc.input(file.bytes);
    /* A native promise: cockpit's own does not turn a throw in a handler into a rejection. */
    return new Promise((resolve, reject) => {
        proc.then(out => resolve(new TextDecoder().decode(out)), ex => {
            const message = errorText(ex).replace(/^xdpctl: /, "").replace(/^cannot (add|replace) - /, "cannot $1 " + file.name + " ");
            reject(new Error(message));
        });
    });
}

function readFile(file) {
    return new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve({ name: file.name, bytes: new Uint8Array(reader.result) });
        reader.onerror = () => reject(new Error("cannot read " + file.name + ": " + reader.error));
        reader.readAsArrayBuffer(file);
    });
}

let dialogSubmit = null;

function openDialog(title, submitLabel, body, onSubmit, danger) {
    document.getElementById("dialog-title").textContent = title;
    const submit = document.getElementById("dialog-submit");
    submit.textContent = submitLabel;
    submit.className = "xdp-btn " + (danger ? "xdp-btn-danger" : "xdp-btn-primary");
    submit.disabled = false;
    document.getElementById("dialog-body").replaceChildren(body);
    const error = document.getElementById("dialog-error");
    error.hidden = true;
    error.textContent = "";
    dialogSubmit = onSubmit;
    document.getElementById("dialog-backdrop").hidden = false;
}

function closeDialog() {
    document.getElementById("dialog-backdrop").hidden = true;
    document.getElementById("dialog-body").replaceChildren();
    dialogSubmit = null;
}

function submitDialog() {
    if (!dialogSubmit)
        return;
    const submit = document.getElementById("dialog-submit");
    const error = document.getElementById("dialog-error");
    submit.disabled = true;
    error.hidden = true;
    Promise.resolve()
            .then(() => dialogSubmit())
            .then(closeDialog, ex => {
                error.textContent = errorText(ex);
                error.hidden = false;
                submit.disabled = false;
            });
}

function field(label, input, help) {
    return h("div", { class: "xdp-form-group" },
             h("label", { class: "xdp-form-label", for: input.id }, label),
             input,
             help ? h("p", { class: "xdp-form-help" }, help) : null);
}

function proceedOnField(prefix, initial) {
    const useDefault = initial === null;
    const boxes = ACTIONS.map(a => h("label", { class: "xdp-check" },
                                     h("input", { type: "checkbox", id: prefix + "-proceed-" + a, value: a, checked: !useDefault && initial.includes(a), disabled: useDefault }),
                                     " " + a));
    const def = h("input", {
        type: "checkbox",
        id: prefix + "-proceed-default",
        checked: useDefault,
        onchange: ev => boxes.forEach(b => { b.firstChild.disabled = ev.target.checked }),
    });
    return h("div", { class: "xdp-form-group" },
             h("span", { class: "xdp-form-label" }, "Proceed on"),
             initial === null ? h("label", { class: "xdp-check" }, def, " From the object's metadata (else pass)") : null,
             h("div", { class: "xdp-checks" }, boxes),
             h("p", { class: "xdp-form-help" }, "Results on which the next program runs; any other result is the packet's verdict. None: this program ends the chain."));
}

function proceedOnArgs(prefix) {
    const def = document.getElementById(prefix + "-proceed-default");
    if (def && def.checked)
        return [];
    const chosen = ACTIONS.filter(a => document.getElementById(prefix + "-proceed-" + a).checked);
    return ["--proceed-on", chosen.length ? chosen.join(",") : "none"];
}

function optionArgs(prefix) {
    const args = [];
    const name = document.getElementById(prefix + "-program").value.trim();
    if (name) args.push("--program", name);
    const priority = document.getElementById(prefix + "-priority").value.trim();
    if (priority) {
        if (!/^-?\d+$/.test(priority))
            throw new Error("The priority must be a whole number.");
        args.push("--priority", priority);
    }
    const tag = document.getElementById(prefix + "-tag").value.trim();
    if (tag) args.push("--tag", tag);
    return args.concat(proceedOnArgs(prefix));
}

function chosenFile(prefix) {
    const input = document.getElementById(prefix + "-file");
    if (!input.files || input.files.length === 0)
        throw new Error("Choose an object file (an XDP ELF object, e.g. filter.o).");
    return readFile(input.files[0]);
}

function addDialog(link) {
    const body = h("form", { class: "xdp-form", onsubmit: ev => { ev.preventDefault(); submitDialog() } },
                   field("Object file", h("input", { type: "file", id: "add-file", accept: ".o,.elf,application/x-object" }),
                         "The ELF object holding the XDP program; the service checks it and the kernel verifies it."),
                   field("Program", h("input", { type: "text", id: "add-program", class: "xdp-input", placeholder: "its only XDP program" }),
                         "Function name in the object; leave empty when it holds one XDP program."),
                   field("Priority", h("input", { type: "text", id: "add-priority", class: "xdp-input", inputmode: "numeric", placeholder: "from the object, else 50" }),
                         "Lower runs first; equal priorities run in the order they were added."),
                   proceedOnField("add", null),
                   field("Tag", h("input", { type: "text", id: "add-tag", class: "xdp-input", placeholder: "your application's name" })),
                   h("label", { class: "xdp-check" }, h("input", { type: "checkbox", id: "add-persist" }), " Keep across reboots (persist)"),
                   link.ForeignProgramId
                       ? h("label", { class: "xdp-check" }, h("input", { type: "checkbox", id: "add-force" }),
                           " Take over: evict the program attached by someone else (kernel id " + link.ForeignProgramId + ")")
                       : null);
    openDialog("Add a program to " + link.Name, "Add", body, () => {
        const args = ["add", link.Name, "-"].concat(optionArgs("add"));
        if (document.getElementById("add-persist").checked) args.push("--persist");
        const force = document.getElementById("add-force");
        if (force && force.checked) args.push("--force");
        return chosenFile("add").then(file => xdpctl(args, file));
    });
}

function changeDialog(link, entry) {
    const p = entry.p;
    const body = h("form", { class: "xdp-form", onsubmit: ev => { ev.preventDefault(); submitDialog() } },
                   h("p", { class: "xdp-form-help" },
                     "Programs are immutable: a change loads the object again as a new program (a new id, and maps that start empty) " +
                     "that takes this one's place. The service does not hand out objects, so choose the object file — the same one to " +
                     "change only the settings, a new one to replace the program."),
                   field("Object file", h("input", { type: "file", id: "change-file", accept: ".o,.elf,application/x-object" })),
                   field("Program", h("input", { type: "text", id: "change-program", class: "xdp-input", value: p.Name })),
                   field("Priority", h("input", { type: "text", id: "change-priority", class: "xdp-input", inputmode: "numeric", value: String(p.Priority) })),
                   proceedOnField("change", p.ProceedOn || []),
                   field("Tag", h("input", { type: "text", id: "change-tag", class: "xdp-input", value: p.Tag || "" }),
                         "With the same tag, a program root owns is replaced atomically; otherwise the new program (owned by root, " +
                         "as the administrator adds it) is added first and this one removed after it."));
    openDialog("Change " + p.Name + " (program " + programId(entry.path) + ") on " + link.Name, "Apply", body, () => {
        const options = optionArgs("change");
        const tag = document.getElementById("change-tag").value.trim();
        const atomic = tag !== "" && tag === p.Tag && p.Owner === 0;
        return chosenFile("change").then(file => {
            if (atomic)
                return xdpctl(["replace", link.Name, "-"].concat(options), file);
            return xdpctl(["add", link.Name, "-"].concat(options), file)
                    .then(() => call(entry.path, PROGRAM, "Remove", []));
        });
    });
}

function removeDialog(link, entry) {
    const p = entry.p;
    const body = h("p", null, "Remove " + p.Name + " (program " + programId(entry.path) + (p.Tag ? ", tag " + p.Tag : "") +
                   ", owner " + owner(p.Owner) + ") from the chain of " + link.Name + "?" +
                   ((link.Programs || []).length === 1 ? " It is the last program: the chain is detached." : ""));
    openDialog("Remove program", "Remove", body, () => call(entry.path, PROGRAM, "Remove", []), true);
}

/* ---- live data ---- */

/* Stats is not signalled (see the top of this file): read it for the links that count.
 *
 * Property reads do not count as activity for the service's idle exit, and its
 * counts start again from zero when it restarts: while the page shows counts it
 * also makes one cheap method call per reading (GetLinkByIndex), so the service
 * stays up and the counts keep counting as long as someone watches them. */
function pollStats() {
    const now = Date.now();
    const reads = [];
    for (const path of Object.keys(links)) {
        const link = links[path];
        // Counting is on by default: only a link with programs has counts to read.
        if (!link.Counting || programsOf(link).length === 0)
            continue;
        if (reads.length === 0)
            reads.push(call(ROOT, BUS_NAME, "GetLinkByIndex", [link.Index]).catch(() => {}));
        for (const entry of programsOf(link)) {
            reads.push(call(entry.path, "org.freedesktop.DBus.Properties", "Get", [PROGRAM, "Stats"])
                    .then(([variant]) => {
                        const stats = variant.v || {};
                        const prev = state.stats[entry.path];
                        let rates = null;
                        const restarted = prev && VERDICTS.some(v => (stats[v] || 0) < (prev.stats[v] || 0));
                        if (prev && now > prev.at && !restarted) {
                            rates = {};
                            for (const v of VERDICTS)
                                rates[v] = Math.max(0, ((stats[v] || 0) - (prev.stats[v] || 0)) * 1000 / (now - prev.at));
                        }
                        state.stats[entry.path] = { at: now, stats, rates };
                    })
                    .catch(() => { /* the program went away meanwhile: its row goes with the next signal */ }));
        }
    }
    Promise.all(reads).then(() => {
        if (reads.length) updateVerdicts();
        window.setTimeout(pollStats, STATS_INTERVAL_MS);
    });
}

/* New counts replace only the verdict cells: rows and buttons stay as they are under the pointer. */
function updateVerdicts() {
    for (const row of document.querySelectorAll("tr[data-path]")) {
        const path = row.dataset.path;
        const program = programs[path];
        const link = program && links[program.Link];
        const cell = row.querySelector("td.xdp-verdicts");
        if (link && cell)
            cell.replaceWith(verdictCell(path, link.Counting));
    }
}

function loadUsers() {
    return cockpit.file("/etc/passwd").read()
            .then(content => {
                for (const line of (content || "").split("\n")) {
                    const fields = line.split(":");
                    if (fields.length > 2) state.users[fields[2]] = fields[0];
                }
            })
            .catch(() => { /* uids are shown instead */ });
}

/* ---- the model: GetManagedObjects, then the signals ---- */

function unwrap(props) {
    const out = {};
    for (const [name, variant] of Object.entries(props || {}))
        out[name] = variant && typeof variant === "object" && "v" in variant ? variant.v : variant;
    return out;
}

function addObject(path, interfaces) {
    if (interfaces[LINK])
        links[path] = Object.assign(links[path] || { path }, unwrap(interfaces[LINK]));
    if (interfaces[PROGRAM])
        programs[path] = Object.assign(programs[path] || { path }, unwrap(interfaces[PROGRAM]));
}

function removeObject(path, interfaces) {
    if (interfaces.includes(LINK)) {
        delete links[path];
        delete state.foreign[path];
    }
    if (interfaces.includes(PROGRAM)) {
        delete programs[path];
        delete state.stats[path];
    }
}

let syncing = null;

/* Everything again from the service; signals that arrive meanwhile are older than its reply. */
function sync() {
    if (!syncing) {
        syncing = call(ROOT, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", [])
                .then(([objects]) => {
                    for (const path of Object.keys(links)) delete links[path];
                    for (const path of Object.keys(programs)) delete programs[path];
                    for (const [path, interfaces] of Object.entries(objects || {}))
                        addObject(path, interfaces);
                })
                .finally(() => { syncing = null; render() });
    }
    return syncing;
}

function subscribe() {
    const om = "org.freedesktop.DBus.ObjectManager";
    client.subscribe({ interface: om, member: "InterfacesAdded", path: ROOT }, (path, iface, signal, [object, interfaces]) => {
        addObject(object, interfaces);
        render();
    });
    client.subscribe({ interface: om, member: "InterfacesRemoved", path: ROOT }, (path, iface, signal, [object, interfaces]) => {
        removeObject(object, interfaces);
        render();
    });
    client.subscribe({ interface: "org.freedesktop.DBus.Properties", member: "PropertiesChanged", path_namespace: ROOT },
                     (path, iface, signal, [changedIface, changed, invalidated]) => {
                         const target = changedIface === LINK ? links[path] : changedIface === PROGRAM ? programs[path] : null;
                         if (!target)
                             return;
                         Object.assign(target, unwrap(changed));
                         for (const name of invalidated || [])
                             call(path, "org.freedesktop.DBus.Properties", "Get", [changedIface, name])
                                     .then(([variant]) => { target[name] = variant.v; render() })
                                     .catch(() => {});
                         render();
                     });
    client.subscribe({ interface: LINK, member: "ChainChanged", path_namespace: ROOT }, (path, iface, signal, [generation, order]) => {
        /* The PropertiesChanged of the same change came first; this is the run order to show. */
        if (links[path]) {
            links[path].Generation = generation;
            links[path].Programs = order;
            /* A chain attached again (by anyone) ends a detachment seen before. */
            if (!links[path].ForeignProgramId && links[path].KernelProgramId)
                delete state.foreign[path];
        }
        render();
    });
    client.subscribe({ interface: LINK, member: "ForeignProgramDetected", path_namespace: ROOT }, (path, iface, signal, [id]) => {
        state.foreign[path] = { id, at: Date.now() };
        const link = links[path];
        addAlert("warning", (link ? link.Name : path) + ": " +
                 (id ? "a program attached by someone else (kernel id " + id + ") replaced the chain."
                     : "the chain was detached behind xdpd's back."));
        render();
    });
    /* A new instance of the service (after an idle exit) may see other interfaces: read everything again. */
    let owner;
    client.addEventListener("owner", (ev, current) => {
        if (current && owner !== undefined && current !== owner)
            sync();
        if (current)
            owner = current;
    });
}

function start() {
    document.getElementById("dialog-submit").addEventListener("click", submitDialog);
    document.getElementById("dialog-cancel").addEventListener("click", closeDialog);
    document.addEventListener("keydown", ev => { if (ev.key === "Escape") closeDialog() });

    subscribe();
    permission.addEventListener("changed", render);
    client.addEventListener("close", (ev, options) => {
        addAlert("danger", "The connection to xdpd (" + BUS_NAME + ") was closed: " +
                 ((options && options.problem) || "unknown problem") + ". Is xdpd installed? Reload the page to retry.");
    });

    const version = call(ROOT, "org.freedesktop.DBus.Properties", "Get", [BUS_NAME, "Version"])
            .then(([variant]) => { state.version = variant.v });
    Promise.all([sync(), loadUsers(), version])
            .catch(ex => addAlert("danger", "Cannot reach xdpd (" + BUS_NAME + "): " + errorText(ex)))
            .then(() => {
                state.ready = true;
                document.getElementById("loading")?.remove();
                renderNow();
                pollStats();
            });
}

start();
