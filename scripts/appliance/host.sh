# scripts/appliance/host.sh: the host's side of the appliance VM before any guest runs,
# sourced by scripts/appliance-test: the host tools (mmdebstrap, qemu from
# bookworm-backports, zbar), the Debian 12 guest image and its cache, gpio-sim.ko for the
# guest's kernel, and the -dev libraries the x86_64 kiosk build links. Bash, not Python:
# these steps are apt, mmdebstrap, kbuild and namespaces, and the image's cache key is the
# text of build_image as bash holds it (`declare -f`), so a cached image stays valid as long
# as that function is unchanged. Expects: here, root, out, images (the image cache, outside
# the clone), arch, qemu_system, qemu_package.
# Sets: image, kernel, initrd (build_image), gpio_sim_ko (gpio_sim_module).

log() { printf '%s appliance: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# The Debian mirror the host's apt uses, never a name written here.
debian_mirror() {
    local f=/etc/apt/sources.list.d/debian.sources
    if [ -r "$f" ]; then
        # The first stanza's URIs whose suites are bookworm itself (not -security).
        awk '/^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm" && uri != "") { print uri; exit } }
             /^$/ { uri = "" }' "$f"
    elif [ -r /etc/apt/sources.list ]; then
        awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list
    fi
}

mirror=$(debian_mirror)
[ -n "$mirror" ] || die "no bookworm mirror in the host's apt sources"

# apt steps as root, or with sudo (scripts/deps does the same); the image build needs root.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

host_tools() {
    local need=()
    command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
    command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
    command -v qemu-img >/dev/null || need+=(qemu-utils)
    command -v zbarimg >/dev/null || need+=(zbar-tools)
    command -v make >/dev/null || need+=(make)
    # The kernel's kbuild tools (objtool) link libelf.
    ldconfig -p | grep -q 'libelf\.so\.1 ' || need+=(libelf1)
    # gpio-sim.ko for the arm64 guest is cross-compiled (scripts/cross-test installs the
    # same compiler).
    [ "$arch" = amd64 ] || command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
    if [ ${#need[@]} -gt 0 ]; then
        log "host packages: ${need[*]}"
        # Another apt (a CI step, a second run) may hold the lock for a while.
        DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y \
            --no-install-recommends "${need[@]}" >&2
    fi
    if ! command -v "$qemu_system" >/dev/null; then
        # The host's own sources plus bookworm-backports, in a list directory of our own:
        # the host's apt configuration and lists are not changed.
        local apt="$out/apt"
        mkdir -p "$apt/sources.list.d" "$apt/lists/partial"
        cp /etc/apt/sources.list.d/*.sources "$apt/sources.list.d/" 2>/dev/null || true
        [ -r /etc/apt/sources.list ] && cp /etc/apt/sources.list "$apt/sources.list" || : >"$apt/sources.list"
        cat >"$apt/sources.list.d/backports.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        local opts=(-o "Dir::Etc::SourceList=$apt/sources.list"
            -o "Dir::Etc::SourceParts=$apt/sources.list.d"
            -o "Dir::State::Lists=$apt/lists" -o DPkg::Lock::Timeout=600)
        log "$qemu_package from bookworm-backports of $mirror"
        $sudo apt-get "${opts[@]}" update >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get "${opts[@]}" install -y --no-install-recommends \
            -t bookworm-backports "$qemu_package" >&2
    fi
    "$qemu_system" --version | head -1 >&2
    [ "$arch" = amd64 ] || foreign_tools
}

# What only the arm64 guest needs on the host. bookworm's qemu-user-static (the root
# filesystem's maintainer scripts run under it) is downloaded and unpacked under
# target/appliance/qemu-user/, not installed: installed, it could register binfmt handlers
# host-wide. The arm64 kernel headers for gpio-sim.ko come from the arm64 package lists
# (scripts/cross-test adds that architecture the same way).
foreign_tools() {
    qemu_user="$out/qemu-user/usr/bin/qemu-aarch64-static"
    if [ ! -x "$qemu_user" ]; then
        log "qemu-user-static, downloaded and unpacked into $out/qemu-user/"
        rm -rf "$out/qemu-user" && mkdir -p "$out/qemu-user/debs"
        (cd "$out/qemu-user/debs" && apt-get download qemu-user-static) >&2
        dpkg-deb -x "$out"/qemu-user/debs/qemu-user-static_*.deb "$out/qemu-user"
        rm -rf "$out/qemu-user/debs"
    fi
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        log "dpkg --add-architecture arm64 (as scripts/cross-test does)"
        $sudo dpkg --add-architecture arm64
        $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    fi
}

# Runs "$@" as root of a user namespace of its own (every uid and gid mapped to itself, so
# what it makes belongs to whom it should) with a mount namespace of its own, where a
# binfmt_misc of its own (Linux >= 6.7 gives a user namespace one) runs aarch64 binaries
# under $qemu_user. The F flag opens the emulator at once, so a chroot needs no copy of
# it. The host's binfmt_misc is not touched. Without newuidmap (not on a plain Debian) the
# maps are written from outside, as soon as the child is in its namespace.
with_aarch64_binfmt() {
    # qemu's own magic and mask for aarch64 ELF executables (its scripts/qemu-binfmt-conf.sh).
    local magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --user --mount --propagation private -- sh -c '
        while [ -z "$(cat /proc/self/uid_map)" ]; do sleep 0.05; done
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 1
        printf "%s" ":qemu-aarch64:M::$1:$2:$3:F" >/proc/sys/fs/binfmt_misc/register || exit 1
        shift 3
        exec "$@"' sh "$magic" "$mask" "$qemu_user" "$@" &
    local pid=$! i
    for i in $(seq 200); do
        [ "$(readlink "/proc/$pid/ns/user")" != "$(readlink /proc/self/ns/user)" ] && break
        sleep 0.05
    done
    { echo "0 0 4294967295" >"/proc/$pid/uid_map" && echo "0 0 4294967295" >"/proc/$pid/gid_map"; } ||
        { kill "$pid"; die "cannot map the user namespace's ids (needs root)"; }
    wait "$pid"
}

# The image's cache key: the build step below (its text, as bash holds it; on arm64 the
# namespace it runs in too), the package list for this architecture and the mirror. The
# rest of this script can change without a rebuild.
image_key() {
    {
        declare -f build_image
        [ "$arch" = amd64 ] || declare -f with_aarch64_binfmt
        package_list
        echo "$mirror"
    } | sha256sum | cut -c1-16
}

build_image() {
    local dir="$images/image-$arch-$(image_key)"
    image="$dir/rootfs.qcow2"
    kernel="$dir/vmlinuz"
    initrd="$dir/initrd.img"
    if [ -f "$dir/done" ]; then
        log "guest image cached: $dir"
        return
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    local t0 rootfs="$dir/rootfs"
    t0=$(now)
    local include
    include=$(package_list | paste -sd, -)
    # An arm64 root filesystem is made by arm64 binaries (maintainer scripts, the
    # initramfs), run under qemu-user in a namespace of their own; mmdebstrap's own check
    # for that (arch-test) is skipped, with_aarch64_binfmt sets it up.
    local wrap=()
    [ "$arch" = amd64 ] || wrap=(with_aarch64_binfmt)
    log "building the Debian 12 $arch guest image (mmdebstrap from $mirror)"
    # MODULES=list before the kernel is installed: its initramfs holds only the modules
    # listed below (virtio over PCI, and over MMIO as on arm64's virt; ext4), not every
    # driver (36 MB -> a few MB, and much faster: on arm64, under emulation, 28 -> 5 min).
    "${wrap[@]}" mmdebstrap --variant=required --architectures="$arch" --skip=check/qemu --include="$include" \
        --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list >"$1/etc/initramfs-tools/conf.d/appliance"' \
        --customize-hook='printf "%s\n" virtio_pci virtio_mmio virtio_blk virtio_scsi ext4 crc32c_generic >>"$1/etc/initramfs-tools/modules"' \
        --customize-hook='chroot "$1" update-initramfs -u -k all' \
        --customize-hook='echo appliance >"$1/etc/hostname"' \
        --customize-hook='echo "/dev/vda / ext4 defaults 0 1" >"$1/etc/fstab"' \
        --customize-hook='echo "share /mnt/share 9p trans=virtio,version=9p2000.L,ro,nofail 0 0" >>"$1/etc/fstab" && mkdir -p "$1/mnt/share"' \
        --customize-hook='chroot "$1" systemctl enable qemu-guest-agent.service 2>/dev/null || true' \
        --customize-hook='chroot "$1" passwd -d root' \
        bookworm "$rootfs" "$mirror" >&2
    # mmdebstrap unmounts the root filesystem's /proc and /sys at its end, but when a process
    # is still inside one (seen once under heavy load: "umount …/rootfs/proc: target is
    # busy", a warning only), mkfs.ext4 -d below would try to copy the host's /proc and
    # fail. Detach whatever is still mounted there first.
    { findmnt -rn -o TARGET | grep -F "$rootfs/" || true; } | sort -r | while read -r m; do
        umount -l "$m"
    done
    # The kernel's release and Debian version: gpio-sim.ko is built for exactly this one.
    ls "$rootfs/lib/modules" >"$dir/kernel-release"
    dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${Version}\n' \
        "linux-image-$(cat "$dir/kernel-release")" >"$dir/kernel-version"
    cp -L "$rootfs/boot/vmlinuz-$(cat "$dir/kernel-release")" "$kernel"
    cp -L "$rootfs/boot/initrd.img-$(cat "$dir/kernel-release")" "$initrd"
    truncate -s 2G "$dir/rootfs.raw"
    mkfs.ext4 -q -L appliance -d "$rootfs" "$dir/rootfs.raw"
    qemu-img convert -O qcow2 "$dir/rootfs.raw" "$image"
    rm -rf "$rootfs" "$dir/rootfs.raw"
    touch "$dir/done"
    log "image build: $(since "$t0") (host, native; initrd $(du -h "$initrd" | cut -f1))"
}

# gpio-sim.ko for the guest's kernel. Debian 12's kernel has neither CONFIG_GPIO_SIM nor the
# IRQ_SIM it needs, so both sources (drivers/gpio/gpio-sim.c, kernel/irq/irq_sim.c) are
# taken from linux-source-6.1 of the guest kernel's own Debian version and built against its
# linux-headers, out of tree, into one module. The packages are downloaded and unpacked
# under the image cache ($images), never installed. irq_sim.c calls irq_to_desc(), which modules
# cannot reach since 6.1; generic_handle_irq() is the exported call that does the same.
gpio_sim_module() {
    local dir kver debver g
    dir=$(dirname "$image")
    kver=$(cat "$dir/kernel-release") debver=$(cat "$dir/kernel-version")
    g="$images/gpio-sim-$kver-$debver"
    gpio_sim_ko="$g/mod/gpio-sim.ko"
    [ -f "$gpio_sim_ko" ] && { log "gpio-sim.ko cached: $gpio_sim_ko"; return; }
    local t0
    t0=$(now)
    rm -rf "$g" && mkdir -p "$g/debs" "$g/mod"
    log "gpio-sim.ko for $kver ($debver): linux-source-6.1 and linux-headers, downloaded"
    local mm
    mm=$(echo "$kver" | cut -d. -f1,2)
    # The headers of the guest's architecture; kbuild's tools (linux-kbuild) run on the
    # host, so they are the host's.
    (cd "$g/debs" && apt-get download "linux-source-$mm=$debver" "linux-headers-$kver:$arch=$debver" \
        "linux-headers-${kver%-*}-common=$debver" "linux-kbuild-$mm=$debver") >&2
    for d in "$g"/debs/*.deb; do dpkg-deb -x "$d" "$g/root"; done
    local h="$g/root/usr/src/linux-headers-$kver"
    # The headers' Makefile includes its -common twin by absolute path.
    sed -i "s|/usr/src/|$g/root/usr/src/|" "$h/Makefile"
    tar -xJf "$g/root/usr/src/linux-source-$mm.tar.xz" -C "$g" --strip-components=1 \
        "linux-source-$mm/drivers/gpio/gpio-sim.c" "linux-source-$mm/drivers/gpio/gpiolib.h" \
        "linux-source-$mm/kernel/irq/irq_sim.c"
    cp "$g/drivers/gpio/gpio-sim.c" "$g/mod/gpio-sim-main.c"
    cp "$g/drivers/gpio/gpiolib.h" "$g/kernel/irq/irq_sim.c" "$g/mod/"
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$g/mod/irq_sim.c"
    grep -q 'generic_handle_irq(irqnum);' "$g/mod/irq_sim.c" || die "irq_sim.c changed: patch it anew"
    printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' >"$g/mod/Kbuild"
    local cross=()
    [ "$arch" = amd64 ] || cross=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
    make -s -C "$h" M="$g/mod" "${cross[@]}" modules >&2 || die "gpio-sim.ko did not build"
    rm -rf "$g/debs" "$g/root/usr/src/linux-source-$mm.tar.xz"
    log "gpio-sim.ko: $(since "$t0") (host, ${cross[*]:-native})"
}

# The kiosk build links libudev, libinput and libxkbcommon. Where the host lacks their -dev
# packages they are downloaded (not installed: the host's dpkg state is left alone) and
# unpacked under target/appliance/hostlibs/, for pkg-config and the linker only.
kiosk_build_libs() {
    if pkg-config --exists libudev libinput xkbcommon 2>/dev/null; then
        return
    fi
    local h="$out/hostlibs" lib
    lib="$h/root/usr/lib/$(gcc -dumpmachine)"
    if [ ! -f "$h/done" ]; then
        log "downloading the kiosk build's -dev packages into $h"
        rm -rf "$h" && mkdir -p "$h/debs"
        (cd "$h/debs" && apt-get download libudev-dev libinput-dev libinput10 libmtdev1 \
            libevdev2 libwacom9 libwacom-common libgudev-1.0-0 libxkbcommon-dev) >&2
        for d in "$h"/debs/*.deb; do dpkg-deb -x "$d" "$h/root"; done
        # A -dev package's lib*.so points at a runtime library the host already has.
        for l in "$lib"/*.so; do
            [ -e "$l" ] || ln -sfn "/usr/lib/$(gcc -dumpmachine)/$(readlink "$l")" "$l"
        done
        touch "$h/done"
    fi
    export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$h/root"
    # LIBRARY_PATH for -l; LD_LIBRARY_PATH for the linker to find libinput's own needs.
    export LIBRARY_PATH="$lib" LD_LIBRARY_PATH="$lib"
}

# The guest image's packages for this architecture (scripts/appliance/packages), one a line.
package_list() {
    grep -v '^\s*#' "$packages" | grep -v '^\s*$' | sed "s/@ARCH@/$arch/g"
}

# Older images and modules of this architecture are of no more use: a CI cache keeps only
# the current ones. The other architecture's stay (their kernel release ends in it), and
# so do image-HASH dirs from before images were named by architecture.
prune_images() {
    find "$images" -maxdepth 1 \( -name "image-$arch-*" -o -name "gpio-sim-*-$arch-*" -o -regex '.*/image-[0-9a-f]*' \) \
        ! -name "$(basename "$(dirname "$image")")" \
        ! -name "gpio-sim-$(cat "$(dirname "$image")/kernel-release")-*" -exec rm -rf {} +
}
