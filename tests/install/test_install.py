# SPDX-License-Identifier: Apache-2.0
"""`meson install` as a package build runs it (issue 14, item 6), in a build directory of its
own (prefix /usr, --buildtype=release -Dtests=false, as the README installs), into a
DESTDIR:

  - default names: exactly keymgr in bindir, keymgrd and keymgr-k8s-signer in sbindir,
    keymgrd-listener in libexecdir, their man pages, keymgr.yaml(5),
    the bash completion in bash-completion's directory and the two systemd units; the units'
    ExecStart= is the path keymgrd was installed at (after @...@ substitution, nothing left);
    the unit documents the device access a USB HSM needs; the installed programs run;
  - -Dcli_name=jwt-keymgr -Ddaemon_name=jwt-keymgrd (a host that also runs Knot DNS, whose
    /usr/sbin/keymgr root would find first): every installed file takes the new name, the
    completion registers for it and completes through the renamed binary, the units start it;
  - another prefix (/opt/keymgr): the units follow the binaries;
  - bad names (empty, with a '/', the same for both) are refused by meson setup with a message.

Usage: /usr/bin/python3 test_install.py SOURCE_ROOT MESON
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = None
MESON = None


def run(*argv, cwd=None, ok=True):
    env = dict(os.environ)
    for v in ("DESTDIR", "MESON_BUILD_ROOT", "MESON_SOURCE_ROOT", "MESONINTROSPECT"):
        env.pop(v, None)
    p = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=900)
    if ok and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def completion_dir(prefix):
    """Where meson.build puts the completion: bash-completion's completionsdir, else
    DATADIR/bash-completion/completions (both under the prefix)."""
    p = subprocess.run(["pkg-config", f"--define-variable=datadir={prefix}/share",
                        "--variable=completionsdir", "bash-completion"],
                       capture_output=True, text=True)
    d = p.stdout.strip()
    return d if p.returncode == 0 and d else f"{prefix}/share/bash-completion/completions"


def installed(dest):
    """Every file under dest, as absolute paths of the target system."""
    out = set()
    for root, _, files in os.walk(dest):
        for f in files:
            out.add("/" + os.path.relpath(os.path.join(root, f), dest))
    return out


def unit_value(text, key):
    return [ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith(key + "=")]


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="keymgr-install-")
        cls.build = os.path.join(cls.tmp, "build")
        # The README's install: a release build (-O3 warns where -O0 does not, and the
        # project builds with -Werror), so an optimiser-only warning fails here.
        run(MESON, "setup", cls.build, SOURCE, "--prefix=/usr", "--buildtype=release",
            "-Dtests=false", "-Dsanitize_address_undefined=false")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def install(self, name, *options):
        if options:
            run(MESON, "configure", self.build, *options)
        dest = os.path.join(self.tmp, name)
        run(MESON, "install", "-C", self.build, "--destdir", dest, "--quiet")
        return dest

    def check_install(self, dest, prefix, cli, daemon):
        comp = completion_dir(prefix)
        unit_dir = f"{prefix}/lib/systemd/system"
        expected = {
            f"{prefix}/bin/{cli}", f"{prefix}/sbin/{daemon}",
            f"{prefix}/libexec/{daemon}-listener", f"{prefix}/sbin/keymgr-k8s-signer",
            f"{prefix}/share/man/man1/{cli}.1", f"{prefix}/share/man/man8/{daemon}.8",
            f"{prefix}/share/man/man8/keymgr-k8s-signer.8",
            f"{prefix}/share/man/man5/keymgr.yaml.5",
            f"{comp}/{cli}", f"{unit_dir}/{daemon}.service", f"{unit_dir}/{daemon}@.service",
            f"{unit_dir}/keymgr-k8s-signer@.service",
        }
        self.assertEqual(sorted(installed(dest)), sorted(expected))
        binary = dest + f"{prefix}/sbin/{daemon}"
        self.assertTrue(os.access(binary, os.X_OK))
        self.assertTrue(os.access(dest + f"{prefix}/bin/{cli}", os.X_OK))
        # The man pages are the project's, under the installed names.
        for src, dst in (("keymgr.1", f"man1/{cli}.1"), ("keymgrd.8", f"man8/{daemon}.8")):
            with open(os.path.join(SOURCE, "docs", src)) as a, \
                    open(dest + f"{prefix}/share/man/{dst}") as b:
                self.assertEqual(a.read(), b.read())
        for unit in (f"{daemon}.service", f"{daemon}@.service"):
            with open(dest + f"{unit_dir}/{unit}") as f:
                text = f.read()
            with self.subTest(unit=unit):
                self.assertIsNone(re.search(r"@[A-Z_]+@", text), "placeholder left")
                start = unit_value(text, "ExecStart")
                self.assertEqual(len(start), 1)
                self.assertEqual(shlex.split(start[0])[0], f"{prefix}/sbin/{daemon}")
                self.assertEqual(unit_value(text, "Documentation"),
                                 [f"man:{daemon}(8) man:keymgr.yaml(5)"])
                # PrivateDevices= hides a USB HSM: the unit says what to write instead.
                self.assertEqual(unit_value(text, "PrivateDevices"), ["yes"])
                for needle in ("#   PrivateDevices=no", "#   DeviceAllow=char-usb_device rw",
                               f"systemctl edit {daemon}"):
                    self.assertIn(needle, text)
        # keymgr-k8s-signer's unit: the signer where it was installed, after the daemon's
        # units under their installed names, with no network but its Unix sockets.
        with open(dest + f"{unit_dir}/keymgr-k8s-signer@.service") as f:
            text = f.read()
        self.assertIsNone(re.search(r"@[A-Z_]+@", text), "placeholder left")
        start = unit_value(text, "ExecStart")
        self.assertEqual(len(start), 1)
        self.assertEqual(shlex.split(start[0])[0], f"{prefix}/sbin/keymgr-k8s-signer")
        self.assertEqual(unit_value(text, "After"), [f"{daemon}.service {daemon}@.service"])
        self.assertEqual(unit_value(text, "RestrictAddressFamilies"), ["AF_UNIX"])
        self.assertEqual(unit_value(text, "PrivateNetwork"), ["yes"])
        return comp

    def check_runs(self, dest, prefix, cli, daemon):
        p = run(dest + f"{prefix}/bin/{cli}", "--help")
        self.assertTrue(p.stdout.startswith("Usage: keymgr"), p.stdout[:80])
        p = run(dest + f"{prefix}/bin/{cli}", "--version")
        self.assertRegex(p.stdout, r"^keymgr \d+\.\d+\.\d+\n$")
        p = run(dest + f"{prefix}/sbin/{daemon}", "--help")
        self.assertTrue(p.stdout.startswith("Usage: keymgrd"), p.stdout[:80])
        # keymgrd's network-facing process, which keymgrd finds in libexecdir
        p = run(dest + f"{prefix}/libexec/{daemon}-listener", "--help")
        self.assertTrue(p.stdout.startswith("Usage: keymgrd-listener"), p.stdout[:80])
        # Kubernetes' external JWT signer (docs/kubernetes.md)
        p = run(dest + f"{prefix}/sbin/keymgr-k8s-signer", "--help")
        self.assertTrue(p.stdout.startswith("Usage: keymgr-k8s-signer"), p.stdout[:80])
        p = run(dest + f"{prefix}/sbin/{daemon}", "--bogus", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown option '--bogus'", p.stderr)

    def check_completion(self, dest, comp, cli, prefix):
        path = dest + f"{comp}/{cli}"
        binary = dest + f"{prefix}/bin/{cli}"
        script = (f"source {shlex.quote(path)}\ncomplete -p {shlex.quote(cli)}\n"
                  f"COMP_WORDS=({shlex.quote(binary)} ro); COMP_CWORD=1\n"
                  f"_keymgr {shlex.quote(cli)} ro {shlex.quote(binary)}\n"
                  "echo \"${COMPREPLY[@]}\"\n")
        p = run("bash", "--norc", "--noprofile", "-c", script)
        self.assertEqual(p.stdout, f"complete -F _keymgr {cli}\nrotate\n")
        self.assertEqual(p.stderr, "")

    def test_install_default_renamed_and_other_prefix(self):
        dest = self.install("default")
        comp = self.check_install(dest, "/usr", "keymgr", "keymgrd")
        self.check_runs(dest, "/usr", "keymgr", "keymgrd")
        self.check_completion(dest, comp, "keymgr", "/usr")

        dest = self.install("renamed", "-Dcli_name=jwt-keymgr", "-Ddaemon_name=jwt-keymgrd")
        comp = self.check_install(dest, "/usr", "jwt-keymgr", "jwt-keymgrd")
        self.check_runs(dest, "/usr", "jwt-keymgr", "jwt-keymgrd")
        self.check_completion(dest, comp, "jwt-keymgr", "/usr")

        dest = self.install("opt", "-Dcli_name=keymgr", "-Ddaemon_name=keymgrd",
                            "--prefix=/opt/keymgr")
        self.check_install(dest, "/opt/keymgr", "keymgr", "keymgrd")
        self.check_runs(dest, "/opt/keymgr", "keymgr", "keymgrd")

    def test_bad_names_refused(self):
        for options, message in ((["-Dcli_name="], "must be plain file names"),
                                 (["-Ddaemon_name=sbin/keymgrd"], "must be plain file names"),
                                 (["-Dcli_name=-x"], "must be plain file names"),
                                 (["-Dcli_name=same", "-Ddaemon_name=same"], "must differ")):
            build = os.path.join(self.tmp, "bad")
            shutil.rmtree(build, ignore_errors=True)
            p = run(MESON, "setup", build, SOURCE, "-Dtests=false", *options, ok=False)
            with self.subTest(options=options):
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(message, p.stdout + p.stderr)
                self.assertFalse(os.path.exists(os.path.join(build, "build.ninja")))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} SOURCE_ROOT MESON [unittest options]", file=sys.stderr)
        sys.exit(2)
    SOURCE = os.path.abspath(sys.argv[1])
    MESON = sys.argv[2]
    prog = unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2, exit=False)
    r = prog.result
    sys.exit(0 if r.testsRun > 0 and r.wasSuccessful() else 1)
