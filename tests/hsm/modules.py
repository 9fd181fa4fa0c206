# SPDX-License-Identifier: Apache-2.0
"""The PKCS#11 implementations of the hsm suite, each started in a temporary directory.

    m = modules.start("tpm2", tmpdir)     # or softhsm, nss, opencryptoki, p11kit
    ... m.module, m.label, m.init_args, m.env, m.pin_file, m.algs ...
    m.stop()

Every class starts what its token needs as root, on loopback or Unix sockets inside its
directory, and stop() ends every process it started (by pid) and nothing else. Nothing
skips: a module whose package is missing raises ModuleMissing, which the suite reports as a
failure (scripts/deps installs them all).

  softhsm       SoftHSM2 with its own tokendir (SOFTHSM2_CONF)
  nss           NSS softoken (libsoftokn3.so) on a database made by `certutil -N`; it needs
                C_Initialize arguments (token.init_args); its token label is always
                "NSS Certificate DB" and its serial 0000000000000000
  tpm2          tpm2-pkcs11 on swtpm (127.0.0.1, free ports), a private dbus-daemon
                --session, tpm2-abrmd --session --allow-root; tpm2_ptool init/addtoken
  opencryptoki  opencryptoki's soft token (slot 3 of the shipped opencryptoki.conf) under one
                pkcsslotd per host: its state is system-wide (/var/lib/opencryptoki/swtok),
                so tests using it run one at a time (is_parallel: false). Opencryptoki 3.8.1
                keeps the token's PINs and NVTOK.DAT in that directory whatever
                PKCS_APP_STORE says, so the helper resets it, refusing when it holds a token
                it did not make (label not starting with "keymgr-test").
  p11kit        SoftHSM2 behind `p11-kit server` on a Unix socket, reached through
                p11-kit-client.so: the token is on "another machine"; restart() kills the
                server and starts it again at the same address (a network HSM failing over)

Quirk profiles (tests/fault's p11fault over SoftHSM2, KEYMGR_P11FAULT_PROFILE; the module
path is P11FAULT, set by the test driver) act like hardware CI cannot have:
  cloudhsm      AWS CloudHSM (SDK 5): C_OpenSession without CKF_RW_SESSION fails
  yubihsm       YubiHSM 2 (yubihsm_pkcs11): a CKA_ID keeps 2 bytes (cut to its first 2),
                16 sessions (CKR_SESSION_COUNT beyond them), keygen labels of at most 40
                bytes (CKR_ATTRIBUTE_VALUE_INVALID beyond them)
  kmsp11        Google Cloud KMS (kmsp11): the token assigns CKA_IDs (16 bytes; a template
                with one is refused), keygen templates of label and algorithm only, labels
                [a-zA-Z0-9_-]{1,63}, no C_CreateObject (so no data objects)
  luna          Thales Luna: Ed25519 parameters only as the OID 1.3.6.1.4.1.11591.15.1,
                read back so
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
P11FAULT = None   # tests/fault's module (keymgr-p11fault.so), for the quirk profiles
SOFTHSM = os.environ.get("KEYMGR_TEST_SOFTHSM_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"

ALL_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
            "EdDSA")
RSA_ALGS = ALL_ALGS[:6]


class ModuleMissing(Exception):
    pass


def _need(path):
    if not os.path.exists(path):
        raise ModuleMissing(f"{path} is missing: run scripts/deps (as root)")
    return path


def _run(argv, env=None, timeout=60, what=None):
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{what or argv[0]}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def _write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _free_port_pair():
    """Two consecutive free TCP ports on 127.0.0.1 (swtpm's server and control ports)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _wait_for(what, ok, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def _stop_pid(pid, grace=5.0):
    """SIGTERM, then SIGKILL after grace seconds; waits for a child, polls otherwise."""
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class Module:
    """One started token. Attributes the tests read:
    name, module (path of the .so), label, serial (or None), init_args (or None), pin,
    pin_file, so_pin, env (variables keymgr needs), algs (what the module can do),
    rsa_bits (sizes that work), quirks (what keymgr must cope with, for the tests)."""

    name = None
    label = "keymgr-test"
    serial = None
    init_args = None
    algs = ALL_ALGS
    rsa_bits = (2048, 3072, 4096)
    pin_len = 16
    pin_max = None   # ulMaxPinLen, where it is short enough to test a PIN beyond it

    def __init__(self, root):
        self.dir = os.path.join(root, self.name)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.env = {}
        self.pids = []
        self.pin = secrets.token_hex(self.pin_len // 2)
        self.so_pin = secrets.token_hex(self.pin_len // 2)
        self.pin_file = os.path.join(self.dir, "user.pin")
        _write_secret(self.pin_file, self.pin + "\n")

    def process_env(self):
        e = dict(os.environ)
        e.update(self.env)
        return e

    def spawn(self, argv, log, env=None):
        out = open(os.path.join(self.dir, log), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env or self.process_env(), start_new_session=True)
        out.close()
        self.pids.append(p.pid)
        return p

    def start(self):
        raise NotImplementedError

    def stop(self):
        for pid in reversed(self.pids):
            _stop_pid(pid)
        self.pids = []

    def config_token(self, pin_file=None):
        """The token: section of keymgr.yaml for this module (YAML text, indented 6)."""
        lines = [f"module: {self.module}"]
        if self.serial:
            lines.append(f'serial: "{self.serial}"')
        else:
            lines.append(f'label: "{self.label}"')
        lines.append(f"pin: file:{pin_file or self.pin_file}")
        if self.init_args:
            lines.append("init_args: " + _yaml_quote(self.init_args))
        return "".join("      " + line + "\n" for line in lines)


def _yaml_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SoftHSM(Module):
    name = "softhsm"

    def start(self):
        self.module = _need(SOFTHSM)
        tokens = os.path.join(self.dir, "tokens")
        os.makedirs(tokens, mode=0o700, exist_ok=True)
        conf = os.path.join(self.dir, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
        self.env["SOFTHSM2_CONF"] = conf
        _run(["softhsm2-util", "--init-token", "--free", "--label", self.label, "--so-pin",
              self.so_pin, "--pin", self.pin], env=self.process_env(), what="softhsm2-util")
        return self


class NSS(Module):
    """NSS softoken: RSA, RSA-PSS, ECDSA; no EdDSA."""
    name = "nss"
    label = "NSS Certificate DB"
    algs = RSA_ALGS + ("ES256", "ES384", "ES512")

    def start(self):
        self.module = _need(os.path.join(LIBDIR, "libsoftokn3.so"))
        _need("/usr/bin/certutil")
        db = os.path.join(self.dir, "db")
        os.makedirs(db, mode=0o700, exist_ok=True)
        pwfile = os.path.join(self.dir, "pw")
        _write_secret(pwfile, self.pin + "\n")
        _run(["certutil", "-N", "-d", "sql:" + db, "-f", pwfile], what="certutil -N")
        os.unlink(pwfile)
        self.init_args = (f"configdir='sql:{db}' certPrefix='' keyPrefix='' "
                          "secmod='secmod.db' flags=")
        return self


class TPM2(Module):
    """tpm2-pkcs11 on swtpm through tpm2-abrmd on a private session bus."""
    name = "tpm2"
    algs = RSA_ALGS + ("ES256", "ES384")
    rsa_bits = (2048, 3072)
    pin_max = 128

    def start(self):
        self.module = _need(os.path.join(LIBDIR, "pkcs11", "libtpm2_pkcs11.so"))
        for tool in ("/usr/bin/swtpm", "/usr/sbin/tpm2-abrmd", "/usr/bin/dbus-daemon",
                     "/usr/bin/tpm2_ptool", os.path.join(LIBDIR, "libtss2-tcti-tabrmd.so.0")):
            _need(tool)
        state = os.path.join(self.dir, "tpmstate")
        store = os.path.join(self.dir, "store")
        os.makedirs(state, mode=0o700, exist_ok=True)
        os.makedirs(store, mode=0o700, exist_ok=True)
        for attempt in range(5):
            port = _free_port_pair()
            p = self.spawn(["swtpm", "socket", "--tpmstate", "dir=" + state, "--tpm2",
                            "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                            "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                            "--flags", "not-need-init,startup-clear"], "swtpm.log")
            try:
                _wait_for("swtpm", lambda: p.poll() is not None or _connects(port), 10)
            except RuntimeError:
                pass
            if p.poll() is None and _connects(port):
                break
            self.pids.remove(p.pid)
            _stop_pid(p.pid)
        else:
            raise RuntimeError("swtpm did not start (see swtpm.log)")
        bus = os.path.join(self.dir, "bus")
        self.env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=" + bus
        self.spawn(["dbus-daemon", "--session", "--nofork", "--nopidfile",
                    "--address=unix:path=" + bus], "dbus.log")
        _wait_for("dbus-daemon", lambda: os.path.exists(bus))
        self.env.update({
            "TPM2_PKCS11_TCTI": "tabrmd:bus_type=session",
            "TPM2TOOLS_TCTI": "tabrmd:bus_type=session",
            "TPM2_PKCS11_STORE": store,
            "TPM2_PKCS11_LOG_LEVEL": "0",
            "TSS2_LOG": "all+NONE",
        })
        self.spawn(["tpm2-abrmd", "--session", "--allow-root",
                    f"--tcti=swtpm:host=127.0.0.1,port={port}"], "abrmd.log")
        # tpm2_ptool init needs the resource manager on the bus: retry until it answers.
        deadline = time.monotonic() + 20
        while True:
            p = subprocess.run(["tpm2_ptool", "init", "--path", store], env=self.process_env(),
                               capture_output=True, text=True, timeout=60)
            if p.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"tpm2_ptool init: {p.stdout}{p.stderr}")
            time.sleep(0.2)
        pid = next((ln.split(":", 1)[1].strip() for ln in p.stdout.splitlines()
                    if ln.startswith("id:")), "1")
        _run(["tpm2_ptool", "addtoken", "--pid=" + pid, "--label=" + self.label,
              "--sopin=" + self.so_pin, "--userpin=" + self.pin, "--path", store],
             env=self.process_env(), what="tpm2_ptool addtoken")
        return self


def _connects(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


OCK_STATE = "/var/lib/opencryptoki/swtok"
OCK_SHM = "/dev/shm/var.lib.opencryptoki.swtok"
OCK_DEFAULT_SO_PIN = "87654321"


class OpenCryptoki(Module):
    """opencryptoki's soft token (slot 3): RSA and RSA-PSS; PINs of 4..8 characters; no
    CKM_SHA256_RSA_PKCS (keymgr signs a DigestInfo with CKM_RSA_PKCS)."""
    name = "opencryptoki"
    label = "keymgr-test-ock"
    algs = RSA_ALGS
    pin_len = 8
    pin_max = 8

    def start(self):
        self.module = _need(os.path.join(LIBDIR, "pkcs11", "libopencryptoki.so"))
        _need("/usr/sbin/pkcsslotd")
        self.started_slotd = False
        if not _pgrep("pkcsslotd"):
            # pkcsslotd forks into the background and writes /var/run/pkcsslotd.pid.
            _run(["/usr/sbin/pkcsslotd"], what="pkcsslotd")
            _wait_for("pkcsslotd", lambda: _pgrep("pkcsslotd"))
            self.started_slotd = True
        self._reset()
        m = self.module
        _run(["pkcs11-tool", "--module", m, "--init-token", "--label", self.label,
              "--so-pin", OCK_DEFAULT_SO_PIN], what="pkcs11-tool --init-token")
        _run(["pkcs11-tool", "--module", m, "--token-label", self.label, "--login",
              "--login-type", "so", "--so-pin", OCK_DEFAULT_SO_PIN, "--init-pin", "--pin",
              self.pin], what="pkcs11-tool --init-pin")
        return self

    def _reset(self):
        """Empties the system-wide soft token (only one this suite made, or a blank one)."""
        nv = os.path.join(OCK_STATE, "NVTOK.DAT")
        if os.path.exists(nv):
            label = _ock_label(self.module)
            if label is not None and not label.startswith("keymgr-test"):
                raise RuntimeError(f"opencryptoki's soft token holds token '{label}', not "
                                   "one of the hsm suite's: not touching it")
        for name in ("NVTOK.DAT", "MK_SO", "MK_USER"):
            try:
                os.unlink(os.path.join(OCK_STATE, name))
            except FileNotFoundError:
                pass
        objdir = os.path.join(OCK_STATE, "TOK_OBJ")
        for name in os.listdir(objdir):
            os.unlink(os.path.join(objdir, name))
        try:
            os.unlink(OCK_SHM)  # the token's state cached in shared memory
        except FileNotFoundError:
            pass

    def stop(self):
        super().stop()
        if self.started_slotd:
            try:
                with open("/var/run/pkcsslotd.pid") as f:
                    _stop_pid(int(f.read().strip()))
            except (OSError, ValueError):
                pass


def _pgrep(name):
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


def _ock_label(module):
    """The label of slot 3's token, or None when it is not initialised."""
    p = subprocess.run(["pkcs11-tool", "--module", module, "-L"], capture_output=True,
                       text=True, timeout=30)
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("token label"):
            return line.split(":", 1)[1].strip()
    return None


class P11Kit(Module):
    """SoftHSM2 served by `p11-kit server` on a Unix socket (p11-kit-client.so). p11-kit 0.24's
    remoting does not carry CKM_EC_EDWARDS_KEY_PAIR_GEN or CKM_EDDSA: no EdDSA through it."""
    name = "p11kit"
    algs = RSA_ALGS + ("ES256", "ES384", "ES512")

    def start(self):
        self.module = _need(os.path.join(LIBDIR, "pkcs11", "p11-kit-client.so"))
        self.backend = SoftHSM(self.dir).start()
        self.env.update(self.backend.env)
        run = os.path.join(self.dir, "run")
        os.makedirs(run, mode=0o700, exist_ok=True)
        self.sock = os.path.join(run, "p11kit.sock")
        self.env["XDG_RUNTIME_DIR"] = run
        self.env["P11_KIT_SERVER_ADDRESS"] = "unix:path=" + self.sock
        # The client needs no SoftHSM configuration: only the server reads it.
        self.pin = self.backend.pin
        self.pin_file = self.backend.pin_file
        self._serve()
        return self

    def _serve(self):
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        self.server = self.spawn(["p11-kit", "server", "-f", "-n", self.sock, "--provider",
                                  SOFTHSM, f"pkcs11:token={self.label}"], "server.log")
        _wait_for("p11-kit server", lambda: os.path.exists(self.sock))

    def kill_server(self):
        """The network HSM goes away (SIGKILL): the server and the processes it forked for
        its connections (`p11-kit server` serves each client in a child that outlives the
        listener: killing the listener alone leaves every connected client working)."""
        children = []
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == self.server.pid:
                        children.append(int(pid))
            except (OSError, ValueError, IndexError):
                continue
        os.kill(self.server.pid, signal.SIGKILL)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.server.wait()
        self.pids.remove(self.server.pid)

    def restart(self):
        self.kill_server()
        self._serve()


class Profile(SoftHSM):
    """SoftHSM2 behind tests/fault's p11fault with a quirk profile (p11fault.c, profiles[]).
    real_module is SoftHSM2's library: for tests that wrap the module once more, and for
    reading the token without keymgr (p11attrs.py: an uninstrumented interpreter cannot load
    the fault module of a sanitizer build)."""
    profile = None

    def start(self):
        super().start()
        self.real_module = self.module
        self.module = _need(P11FAULT)
        self.env["KEYMGR_P11FAULT_MODULE"] = self.real_module
        self.env["KEYMGR_P11FAULT_PROFILE"] = self.profile
        self.env["KEYMGR_P11FAULT_LOG"] = os.path.join(self.dir, "p11fault.log")
        return self

    def fault_log(self):
        """What the profile's rules did so far (p11fault's KEYMGR_P11FAULT_LOG)."""
        try:
            with open(self.env["KEYMGR_P11FAULT_LOG"]) as f:
                return f.read()
        except FileNotFoundError:
            return ""


class CloudHSM(Profile):
    """AWS CloudHSM (SDK 5): read-only sessions refused."""
    name = profile = "cloudhsm"


class YubiHSM(Profile):
    """YubiHSM 2: 2-byte CKA_IDs, 16 sessions, labels of at most 40 bytes."""
    name = profile = "yubihsm"
    id_bytes = 2
    label_max = 40


class Kmsp11(Profile):
    """Google Cloud KMS (kmsp11): token-assigned 16-byte CKA_IDs, label-and-algorithm keygen
    templates, labels [a-zA-Z0-9_-]{1,63}, no data objects."""
    name = profile = "kmsp11"
    id_bytes = 16
    ids_assigned = True
    label_max = 63
    no_data_objects = True


class Luna(Profile):
    """Thales Luna: Ed25519 parameters only as its OID (1.3.6.1.4.1.11591.15.1)."""
    name = profile = "luna"
    ed25519_params = "06092b06010401da470f01"
    lean_alg = "EdDSA"   # the sanitizer build's one algorithm: the quirk's


KINDS = {c.name: c for c in (SoftHSM, NSS, TPM2, OpenCryptoki, P11Kit, CloudHSM, YubiHSM,
                             Kmsp11, Luna)}


def start(name, root):
    """Starts module name in a subdirectory of root; the caller stops it."""
    m = KINDS[name](root)
    try:
        return m.start()
    except BaseException:
        m.stop()
        raise


if __name__ == "__main__":
    # By hand: python3 modules.py NAME... starts each, prints its settings, and stops it.
    import sys
    import tempfile
    root = tempfile.mkdtemp(prefix="keymgr-hsm-")
    try:
        for n in sys.argv[1:] or KINDS:
            m = start(n, root)
            print(n, m.module, m.label, m.init_args, m.env)
            m.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
