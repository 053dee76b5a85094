# xdpd: build, test, install.
#
#   make                 build everything (release) and collect the example BPF objects
#   make test            the whole test suite, as root (see README.md)
#   sudo make install    install the service, xdpctl and their system files
#   sudo make uninstall  remove what install installed
#
# install honours DESTDIR (a staging root) and PREFIX (default /usr: the unit and
# the activation file name $(PREFIX)/libexec/xdpd). The D-Bus, polkit and systemd
# files go where those read them, whatever PREFIX is.

CARGO ?= cargo
PREFIX ?= /usr
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
DOCDIR ?= $(DATADIR)/doc/xdpd
EXAMPLEDIR ?= $(DATADIR)/xdpd/examples
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
COCKPITDIR ?= $(DATADIR)/cockpit/xdpd
SYSTEMDUNITDIR ?= /usr/lib/systemd/system
DBUSDIR ?= /usr/share/dbus-1
POLKITACTIONDIR ?= /usr/share/polkit-1/actions

RELEASE := target/release
# Every bpf/*.bpf.c is an example; bpf/build.rs compiles it into its OUT_DIR,
# and build copies the objects here (install must not need cargo: it runs as root).
EXAMPLES := $(patsubst bpf/%.bpf.c,%,$(wildcard bpf/*.bpf.c))
EXAMPLE_OBJECTS := $(RELEASE)/bpf-examples
# The Cockpit page: plain files, no build step.
COCKPIT_FILES := manifest.json index.html xdpd.js xdpd.css

.PHONY: all build test install uninstall clean

all: build

build:
	$(CARGO) build --workspace --release
	@out=$$($(CARGO) build --release -p xdpd-bpf --message-format=json 2>/dev/null | \
	    sed -n '/"build-script-executed"/{/xdpd-bpf/s/.*"out_dir":"\([^"]*\)".*/\1/p}'); \
	test -n "$$out" || { echo "cannot find the OUT_DIR of xdpd-bpf" >&2; exit 1; }; \
	mkdir -p $(EXAMPLE_OBJECTS) && \
	for e in $(EXAMPLES); do cp "$$out/objects/$$e.o" $(EXAMPLE_OBJECTS)/ || exit 1; done; \
	echo "example objects: $(EXAMPLE_OBJECTS)/"

# The whole suite, as root: real BPF programs, veth pairs in network namespaces.
# Tests share network namespaces and bpffs, but each creates its own; two
# threads keep the 2-CPU machines responsive while traffic tests run.
test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=2

install:
	@for f in $(RELEASE)/xdpd $(RELEASE)/xdpctl $(foreach e,$(EXAMPLES),$(EXAMPLE_OBJECTS)/$(e).o); do \
	    test -f $$f || { echo "$$f is missing: run make (as yourself) before make install" >&2; exit 1; }; \
	done
	install -D -m 0755 $(RELEASE)/xdpd $(DESTDIR)$(LIBEXECDIR)/xdpd
	install -D -m 0755 $(RELEASE)/xdpctl $(DESTDIR)$(BINDIR)/xdpctl
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DBUSDIR)/system-services $(DESTDIR)$(DBUSDIR)/system.d
	sed 's|/usr/libexec/xdpd|$(LIBEXECDIR)/xdpd|' systemd/xdpd.service >$(DESTDIR)$(SYSTEMDUNITDIR)/xdpd.service
	sed 's|/usr/libexec/xdpd|$(LIBEXECDIR)/xdpd|' systemd/org.xdp.Manager1.service \
	    >$(DESTDIR)$(DBUSDIR)/system-services/org.xdp.Manager1.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/xdpd.service $(DESTDIR)$(DBUSDIR)/system-services/org.xdp.Manager1.service
	install -m 0644 systemd/org.xdp.Manager1.conf $(DESTDIR)$(DBUSDIR)/system.d/org.xdp.Manager1.conf
	install -D -m 0644 polkit/org.xdp.manager1.policy $(DESTDIR)$(POLKITACTIONDIR)/org.xdp.manager1.policy
	install -D -m 0644 polkit/rules/50-xdpd-example.rules $(DESTDIR)$(DOCDIR)/50-xdpd-example.rules
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 bpf/README.md $(DESTDIR)$(EXAMPLEDIR)/README.md
	install -m 0644 $(foreach e,$(EXAMPLES),$(EXAMPLE_OBJECTS)/$(e).o) $(DESTDIR)$(EXAMPLEDIR)/
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	$(RELEASE)/xdpctl completions bash >$(DESTDIR)$(BASHCOMPDIR)/xdpctl
	$(RELEASE)/xdpctl completions zsh >$(DESTDIR)$(ZSHCOMPDIR)/_xdpctl
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/xdpctl $(DESTDIR)$(ZSHCOMPDIR)/_xdpctl
	install -d $(DESTDIR)$(COCKPITDIR)
	install -m 0644 $(foreach f,$(COCKPIT_FILES),cockpit/$(f)) $(DESTDIR)$(COCKPITDIR)/
	@echo
	@echo "xdpd is installed. Let systemd and the system bus see it:"
	@echo "    systemctl daemon-reload"
	@echo "    systemctl reload dbus"
	@echo "then try: xdpctl status"
	@echo "With Cockpit installed, the page is at https://HOST:9090/xdpd"

uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/xdpd $(DESTDIR)$(BINDIR)/xdpctl
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/xdpd.service
	rm -f $(DESTDIR)$(DBUSDIR)/system-services/org.xdp.Manager1.service $(DESTDIR)$(DBUSDIR)/system.d/org.xdp.Manager1.conf
	rm -f $(DESTDIR)$(POLKITACTIONDIR)/org.xdp.manager1.policy
	rm -f $(DESTDIR)$(DOCDIR)/50-xdpd-example.rules $(DESTDIR)$(DOCDIR)/README.md
	rm -f $(DESTDIR)$(EXAMPLEDIR)/README.md $(foreach e,$(EXAMPLES),$(DESTDIR)$(EXAMPLEDIR)/$(e).o)
	rm -f $(DESTDIR)$(BASHCOMPDIR)/xdpctl $(DESTDIR)$(ZSHCOMPDIR)/_xdpctl
	rm -f $(foreach f,$(COCKPIT_FILES),$(DESTDIR)$(COCKPITDIR)/$(f))
	rmdir $(DESTDIR)$(COCKPITDIR) $(DESTDIR)$(DATADIR)/cockpit 2>/dev/null || true
	rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(EXAMPLEDIR) $(DESTDIR)$(DATADIR)/xdpd 2>/dev/null || true
	@echo
	@echo "xdpd is uninstalled. Now run:"
	@echo "    systemctl daemon-reload"
	@echo "    systemctl reload dbus"
	@echo "Chains still attached keep running until their pins are removed"
	@echo "(rm -r /sys/fs/bpf/xdpd); the record of programs stays in /var/lib/xdpd."

clean:
	$(CARGO) clean
