# scripts/appliance/debs.sh: the .debs the appliance guest installs, sourced by
# scripts/appliance-test after host.sh (it uses log, die and kiosk_build_libs):
#   build_deb     the .deb under test: x86_64 built here in the vm profile (Cargo.toml), or
#                 LNVEND_DEB; arm64 the one scripts/cross-test built (LNVEND_DEB_ARM64).
#   previous_deb  the previous release's x86_64 .deb, for the upgrade check (built from the
#                 commit in scripts/appliance/previous-release, cached outside the clone).
# Sets: deb, previous_deb.

# The kiosk build's cargo arguments, the same for the new .deb and the previous release's.
kiosk_args=(--locked --profile vm --no-default-features --features kiosk)

build_deb() {
    if [ "$arch" = arm64 ]; then
        deb_arm64
        return
    fi
    if [ -z "${LNVEND_DEB:-}" ]; then
        command -v cargo-deb >/dev/null || cargo install --locked cargo-deb >&2
        log "kiosk build (profile vm)"
        # A subshell: kiosk_build_libs's pkg-config and linker paths stay out of later steps.
        (cd "$root" && kiosk_build_libs && nice -n 5 cargo build "${kiosk_args[@]}" &&
            cargo deb --no-build --profile vm) >&2 || die "the x86_64 .deb did not build"
        LNVEND_DEB=$(ls -t "$root"/target/debian/lnvend_*_amd64.deb | head -1)
    fi
    [ -f "$LNVEND_DEB" ] || die "no .deb at $LNVEND_DEB"
    deb=$LNVEND_DEB
    log "deb: $deb"
}

# The vm profile's settings in Cargo.toml as `cargo --config` arguments: the previous
# release's Cargo.toml may not have that profile, and its build must be the same one. The
# profile inherits release's per-crate `opt-level`s ([profile.release.package.<crate>]), so
# they are passed too: without them the previous release would build those crates, and
# every crate above them (slint, its renderer, the pictures), a second time.
vm_profile_config() {
    awk '/^\[/ { vm = ($0 == "[profile.vm]") }
         vm && /^[a-z-]+ *=/ { v = $0; sub(/ *= */, "=", v); print "profile.vm." v }' "$root/Cargo.toml"
    # Only `opt-level` is expected in a per-crate section; any other key there is reported
    # (and refused by previous_deb) rather than dropped. Not read: release's own top-level
    # keys (the vm profile inherits them only through the previous release's Cargo.toml),
    # build-override and [profile.vm.package.*] sections; Cargo.toml has none of these that
    # differ today.
    awk '/^\[profile\.release\.package\./ {
             crate = $0; sub(/^\[profile\.release\.package\./, "", crate); sub(/\]$/, "", crate); next }
         /^\[/ { crate = "" }
         crate != "" && /^opt-level *=/ {
             v = $0; sub(/^opt-level *= */, "", v); print "profile.vm.package." crate ".opt-level=" v; next }
         crate != "" && /^[^#[:space:]]/ { print "UNSUPPORTED " crate ": " $0 }' \
        "$root/Cargo.toml"
}

# The previous release's .deb, built from the commit named in
# scripts/appliance/previous-release (git archive into the cache, no second work tree in the
# clone) with the same profile and features as the new one, and version <its version>~prev
# so that the new .deb is an upgrade of it. Cached in ~/.cache/lnvend/previous-deb-<key>/
# (or $XDG_CACHE_HOME), keyed by the commit, the profile's settings, the features and the
# compiler: rebuilt when missing, and concurrent runs wait on one lock (as
# scripts/lightningd does). It compiles into the clone's target/ so that it shares the
# dependencies' build with the new .deb: only the lnvend crate itself is compiled twice.
# Run it before build_deb: it leaves its own binary in target/vm/ and empties target/debian/.
previous_deb() {
    local commit key cache dir config=() version
    commit=$(grep -v '^\s*#' "$here/appliance/previous-release" | grep -v '^\s*$' | head -1)
    previous_deb=""
    if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
        # A shallow clone: ask its origin for that one commit.
        timeout 300 git -C "$root" fetch --quiet --depth=1 origin "$commit" >&2 2>/dev/null || true
    fi
    if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
        # Loud, and in the summary table as skipped: a clone's depth is not lnvend's fault,
        # and every other check still runs.
        log "WARNING: the previous release $commit is not in this clone and could not be fetched: the upgrade-during-a-sale check is SKIPPED"
        return 0
    fi
    local setting sections=0 crates=0
    while read -r setting; do
        case $setting in
            UNSUPPORTED*) die "Cargo.toml: $setting (scripts/appliance/debs.sh passes only opt-level per crate to the previous release's build)" ;;
            profile.vm.package.*) crates=$((crates + 1)) ;;
        esac
        config+=(--config "$setting")
    done < <(vm_profile_config)
    sections=$(grep -c '^\[profile\.release\.package\.' "$root/Cargo.toml" || true)
    [ "$crates" -eq "$sections" ] ||
        die "Cargo.toml has $sections [profile.release.package.*] sections but $crates opt-levels were read for the previous release's build"
    key=$( { echo "$commit"; printf '%s\n' "${config[@]}" "${kiosk_args[@]}"; rustc -V; } | sha256sum | cut -c1-16)
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/lnvend"
    dir="$cache/previous-deb-$key"
    mkdir -p "$cache"
    exec 8>"$dir.lock"
    if ! flock -n 8; then
        log "another build of $dir is running; waiting for it"
        flock 8
    fi
    if [ ! -e "$dir/.complete" ]; then
        local t0
        t0=$(now)
        log "the previous release ${commit:0:12}: building its .deb into $dir"
        rm -rf "$dir" && mkdir -p "$dir/src"
        git -C "$root" archive "$commit" | tar -x -C "$dir/src"
        version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$dir/src/Cargo.toml" | head -1)~prev.${commit:0:7}-1"
        command -v cargo-deb >/dev/null || cargo install --locked cargo-deb >&2
        (cd "$dir/src" && kiosk_build_libs && export CARGO_TARGET_DIR="$root/target" &&
            nice -n 5 cargo build "${config[@]}" "${kiosk_args[@]}" &&
            cargo deb --no-build --profile vm --deb-version "$version" --output "$dir/") >&2 ||
            die "the previous release's .deb did not build (in $dir/src)"
        rm -rf "$dir/src"
        touch "$dir/.complete"
        log "previous release's .deb: $(since "$t0")"
    fi
    exec 8>&-
    previous_deb=$(ls "$dir"/lnvend_*.deb)
    log "previous release: $previous_deb"
}

# The arm64 .deb, the one that ships to the Pi: LNVEND_DEB_ARM64, else the newest that
# scripts/cross-test left (./scripts/test runs it first), else one built the way
# scripts/cross-test builds it (whose package step installs the cross toolchain this needs).
deb_arm64() {
    local t="${CARGO_TARGET_DIR:-$root/target}/aarch64-unknown-linux-gnu/debian"
    deb=${LNVEND_DEB_ARM64:-$(ls -t "$t"/lnvend_*_arm64.deb 2>/dev/null | head -1 || true)}
    if [ -z "$deb" ]; then
        log "no arm64 .deb in $t: cross-building it as scripts/cross-test does"
        (
            cd "$root"
            # shellcheck source=scripts/cross-env
            . scripts/cross-env
            cargo build --locked --release --target "$LNVEND_PI_TARGET" --no-default-features --features kiosk
            command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
            cargo deb --no-build --target "$LNVEND_PI_TARGET" --output "$t/"
        ) >&2 || die "the arm64 .deb did not build (run scripts/cross-test once: it installs the cross toolchain)"
        deb=$(ls -t "$t"/lnvend_*_arm64.deb | head -1)
    fi
    [ -f "$deb" ] || die "no .deb at $deb"
    [ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] || die "$deb is not an arm64 package"
    log "deb: $deb"
}
