# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""kvm.ko and kvm-amd.ko rebuilt from Debian's own source with CONFIG_KVM_SW_PROTECTED_VM=y.

Debian's kernels leave KVM_SW_PROTECTED_VM unset, so their VMs have no private memory: no
KVM_X86_SW_PROTECTED_VM (type 1), no KVM_SET_MEMORY_ATTRIBUTES, no conversions. Only
arch/x86/kvm reads that option (mmu.c, x86.c), so rebuilding the two KVM modules, not the
kernel, is enough. Everything comes from Debian's packages, through the lab's private apt root:

  linux-source-SERIES               the patched source the kernel was built from
  linux-headers-V-amd64 (+ -common) the shipped .config, Module.symvers and a BTF-only vmlinux
  linux-kbuild-V                    (its host tools need a newer glibc than this host's; the
                                    source's own scripts/ and tools/ are built here instead)

The steps: the shipped .config plus KVM_SW_PROTECTED_VM, `make olddefconfig` with this host's
gcc (the kernel was built with a newer gcc; olddefconfig re-derives only the toolchain's
capability symbols, and config.diff records every difference), `modules_prepare` with the
kernel's KERNELRELEASE, then `make M=arch/x86/kvm` against the headers' Module.symvers and
vmlinux (module BTF is split BTF against that vmlinux; pahole is this host's). The vermagic of
each module must equal the stock one, or the build fails. Modules are built unsigned: the config
does not force signatures, so they load and taint the kernel (out-of-tree, unsigned).

The same tree builds the kernel's own KVM selftests guest_memfd_test and
x86/private_mem_conversions_test (`make headers`, then the two targets of
tools/testing/selftests/kvm, with this host's gcc): the lab runs them under gmemd as peer
workloads (tests/live/test_conversions.py).

The result is cached under build/lab/kvm-swprot/V/: modules/ is the stock module set with kvm
and kvm_amd replaced, ready for the lab's initrd, and selftests/ holds the two selftests.
GMEM_LAB_KEEP_SRC=1 keeps the 1.8 GB tree.
"""
import glob
import os
import re
import shutil
import subprocess
import time

import lab

VARIANT = "sw-protected"
OPTION = "CONFIG_KVM_SW_PROTECTED_VM"

# Symbols olddefconfig may re-derive for this host's toolchain: compiler, assembler, linker and
# pahole versions and capabilities, and Rust (no rustc/bindgen here), with what depends on it.
# None of them is read by KVM's code or changes a structure KVM shares with vmlinux.
TOOLCHAIN = re.compile(r"CONFIG_(CC_|GCC_|AS_|LD_|PAHOLE_|RUST|BINDGEN_|CLANG_|TOOLS_SUPPORT_|"
                       r"OPENSSL_SUPPORTS_|AMCC_QT2025_PHY$|AX88796B_RUST_PHY$|"
                       r"DRM_PANIC_SCREEN_QR_)")


def _dir(version):
    return os.path.join(lab.LAB, "kvm-swprot", version)


def moddir(version):
    return os.path.join(_dir(version), "modules")


# The selftests the lab runs as peer workloads, by their path under tools/testing/selftests/kvm.
SELFTESTS = ["guest_memfd_test", "x86/private_mem_conversions_test"]


def selftests_dir(version):
    return os.path.join(_dir(version), "selftests")


def ready(version):
    return os.path.exists(os.path.join(_dir(version), "ready"))


def _run(args, cwd, logf, what):
    with open(logf, "a") as f:
        f.write(f"$ {' '.join(args)}\n")
        f.flush()
        p = subprocess.run(["nice", *args], cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        with open(logf, errors="replace") as f:
            tail = "".join(f.readlines()[-25:])
        raise lab.LabError(f"kvm build: {what} failed (exit {p.returncode}); log {logf}:\n{tail}")


def _config(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"(CONFIG_\w+)=(.*)", line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def _vermagic(ko):
    return subprocess.run(["modinfo", "-F", "vermagic", ko], capture_output=True, text=True,
                          check=True).stdout.strip()


def build(version, log=print, jobs=2):
    """Build (once) and return the module directory with the SW_PROTECTED kvm for version."""
    if ready(version):
        return moddir(version)
    k = lab.fetch(version, log)
    for tool in ("gcc", "make", "flex", "bison", "bc", "pahole", "objcopy", "xz"):
        if not shutil.which(tool):
            raise lab.LabError(f"kvm build: {tool} not found: run make deps (it installs "
                               f"gcc flex bison dwarves libssl-dev xz-utils)")
    t0 = time.monotonic()
    top = _dir(version)
    work = os.path.join(top, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    logf = os.path.join(top, "build.log")
    open(logf, "w").close()
    lab.apt_update()
    release = k.release
    pkgs = [f"linux-source-{k.series}", f"linux-headers-{release}",
            f"linux-headers-{version}-common", f"linux-kbuild-{version}"]
    log(f"lab: {version}: kvm ({VARIANT}): downloading {' '.join(pkgs)}")
    debs = lab._download(pkgs, os.path.join(lab.LAB, "debs"))
    want = re.sub(r"\+deb\d+$", "", version)
    srcver = subprocess.run(["dpkg-deb", "-f", debs[0], "Version"], capture_output=True,
                            text=True, check=True).stdout.strip()
    if not srcver.startswith(want + "-"):
        raise lab.LabError(f"kvm build: {pkgs[0]} is {srcver}, not the source of {version}")
    x = os.path.join(work, "x")
    for deb in debs:
        _run(["dpkg-deb", "-x", deb, x], work, logf, f"unpacking {os.path.basename(deb)}")
    tarball = glob.glob(os.path.join(x, "usr/src", f"linux-source-{k.series}.tar.*"))
    if not tarball:
        raise lab.LabError(f"kvm build: no source tarball in {pkgs[0]}")
    log(f"lab: {version}: kvm ({VARIANT}): unpacking {os.path.basename(tarball[0])}")
    _run(["tar", "-xf", tarball[0]], work, logf, "unpacking the source")
    src = os.path.join(work, f"linux-source-{k.series}")
    hdr = os.path.join(x, "usr/src", f"linux-headers-{release}")

    shutil.copy(os.path.join(hdr, ".config"), os.path.join(src, ".config"))
    _run(["scripts/config", "--enable", OPTION.removeprefix("CONFIG_")], src, logf,
         "scripts/config")
    _run(["make", "-s", "olddefconfig"], src, logf, "make olddefconfig")
    shipped, ours = _config(os.path.join(hdr, ".config")), _config(os.path.join(src, ".config"))
    if ours.get(OPTION) != "y":
        raise lab.LabError(f"kvm build: olddefconfig dropped {OPTION} (its dependencies "
                           f"EXPERT, KVM_X86, X86_64 are not all set?)")
    diff = sorted(s for s in set(shipped) | set(ours) if shipped.get(s) != ours.get(s))
    with open(os.path.join(top, "config.diff"), "w") as f:
        for s in diff:
            f.write(f"{s}: {shipped.get(s, '(unset)')} -> {ours.get(s, '(unset)')}\n")
    other = [s for s in diff if s != OPTION and not TOOLCHAIN.match(s)]
    if other:
        raise lab.LabError(f"kvm build: olddefconfig changed more than {OPTION} and toolchain "
                           f"symbols: {', '.join(other)} (see {top}/config.diff)")

    kr = f"KERNELRELEASE={release}"
    log(f"lab: {version}: kvm ({VARIANT}): make modules_prepare, then M=arch/x86/kvm "
        f"(-j{jobs}, log {logf})")
    _run(["make", f"-j{jobs}", kr, "modules_prepare"], src, logf, "make modules_prepare")
    # The kernel's exports and its BTF: modpost checks kvm's imports against the first, and
    # each module's BTF is split BTF on top of the second.
    shutil.copy(os.path.join(hdr, "Module.symvers"), src)
    shutil.copy(os.path.join(hdr, "vmlinux"), src)
    # CONFIG_KVM_INTEL= on the command line builds only kvm and kvm-amd from the directory.
    _run(["make", f"-j{jobs}", kr, "M=arch/x86/kvm", "CONFIG_KVM_INTEL=", "modules"], src, logf,
         "make M=arch/x86/kvm modules")

    built = {"kvm": os.path.join(src, "arch/x86/kvm/kvm.ko"),
             "kvm_amd": os.path.join(src, "arch/x86/kvm/kvm-amd.ko")}
    stock = {n: os.path.join(k.moddir, n + ".ko") for n in built}
    for n in built:
        if _vermagic(built[n]) != _vermagic(stock[n]):
            raise lab.LabError(f"kvm build: {n}.ko vermagic '{_vermagic(built[n])}' is not the "
                               f"kernel's '{_vermagic(stock[n])}'")
    mods = moddir(version)
    shutil.rmtree(mods, ignore_errors=True)
    shutil.copytree(k.moddir, mods)
    for n, ko in built.items():
        # The lab boots from an initrd: drop DWARF, keep .BTF (not a debug section).
        os.unlink(os.path.join(mods, n + ".ko"))
        _run(["objcopy", "--strip-debug", ko, os.path.join(mods, n + ".ko")], src, logf,
             f"objcopy --strip-debug {n}.ko")
    log(f"lab: {version}: kvm ({VARIANT}): make headers, then the selftests "
        f"{' '.join(SELFTESTS)}")
    _run(["make", "-s", "headers"], src, logf, "make headers")
    sdir = selftests_dir(version)
    shutil.rmtree(sdir, ignore_errors=True)
    _run(["make", f"-j{jobs}", f"OUTPUT={sdir}", *(os.path.join(sdir, t) for t in SELFTESTS)],
         os.path.join(src, "tools/testing/selftests/kvm"), logf, "make (kvm selftests)")
    for t in SELFTESTS:
        shutil.move(os.path.join(sdir, t), os.path.join(sdir, os.path.basename(t)))
    for junk in os.listdir(sdir):
        if os.path.basename(junk) not in [os.path.basename(t) for t in SELFTESTS]:
            path = os.path.join(sdir, junk)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    secs = time.monotonic() - t0
    with open(os.path.join(top, "ready"), "w") as f:
        f.write(f"{VARIANT} kvm for {version} built in {secs:.0f}s from "
                f"{' '.join(os.path.basename(d) for d in debs)}\n")
    if os.environ.get("GMEM_LAB_KEEP_SRC") != "1":
        shutil.rmtree(work, ignore_errors=True)
    log(f"lab: {version}: kvm ({VARIANT}): ready in {secs:.0f}s ({mods})")
    return mods
