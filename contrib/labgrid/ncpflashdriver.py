"""labgrid driver for ncpflash: flash Bouffalo-ISP chips (BL616/QCC743, ST67W611M1) from labgrid.

Load it from the environment YAML::

    imports:
      - /path/to/ncpflash/contrib/labgrid/ncpflashdriver.py   # relative paths: to the YAML file
    targets:
      main:
        resources:
          NetworkSerialPort: {host: lab-host, port: 4001}      # or RawSerialPort / USBSerialPort
        drivers:
          NcpflashDriver:
            config: release/mission_t02_flash_prog_cfg_v2.0.89.ini

and call ``target.get_driver("NcpflashDriver").flash()`` (or ``.load(file)`` through
``BootstrapProtocol``).  The driver runs ``ncpflash --json --port URL ...`` for each call, logs the
stages, and returns the command's result; a failure raises :class:`NcpflashError` (a labgrid
``ExecutionError``) carrying the device's error code and message.

Remote ports are reached as labgrid's own SerialDriver reaches them: host and port through
``proxymanager.get_host_and_port`` (which also sets up SSH forwarding to exporters behind a proxy),
and ``?ign_set_control`` on RFC 2217 URLs, because ser2net does not answer SET-CONTROL on ports
without modem lines.  ncpflash needs the port alone: deactivate a console driver bound to the same
port before flashing (``target.deactivate(console)``).

Requires labgrid 0.4.1 or newer (Debian 12's python3-labgrid works) and an ncpflash binary: the
``tools: ncpflash:`` entry of the environment, else the driver's ``tool`` attribute, else
``ncpflash`` on PATH.  ncpflash's README section "Labs and CI" has the full walk-through.
"""

import json
import logging
import subprocess
import threading

import attr

from labgrid.driver.common import Driver
from labgrid.driver.exception import ExecutionError
from labgrid.factory import target_factory
from labgrid.protocol import BootstrapProtocol
from labgrid.resource import NetworkSerialPort
from labgrid.step import step
from labgrid.util.proxy import proxymanager

__all__ = ["NcpflashDriver", "NcpflashError"]


class NcpflashError(ExecutionError):
    """ncpflash failed.  ``code`` is ncpflash's stable error code (``device``, ``handshake``,
    ``verify``, ``input``, ...; ``driver_timeout`` when the driver had to kill it), ``message``
    the device's or ncpflash's message, ``exit_code`` ncpflash's exit status, ``region`` the
    region the error names (or None), ``error`` the whole JSON error event, ``events`` every
    event of the run."""

    def __init__(self, code, message, exit_code, error=None, events=None, stderr=None):
        error = error or {}
        self.code = code
        self.message = message
        self.exit_code = exit_code
        self.region = error.get("region")
        self.hint = error.get("hint")
        self.fl = error.get("fl")
        self.error = error
        self.events = events or []
        where = f" (region {self.region})" if self.region and self.region not in message else ""
        super().__init__(f"ncpflash: {code}: {message}{where}",
                         stdout=[json.dumps(e) for e in self.events], stderr=stderr or [])

    def __str__(self):
        return self.msg


def _opt_str():
    return attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))


def _str_list():
    return attr.ib(default=attr.Factory(list), validator=attr.validators.instance_of(list))


@attr.s(eq=False)
class NcpflashDriver(Driver, BootstrapProtocol):
    """Runs ncpflash on the bound serial port.

    Attributes (all optional):
      tool: ncpflash binary (default: ``tools: ncpflash`` of the environment, else "ncpflash")
      board, chip: ncpflash's --board / --chip
      config: flash_prog_cfg.ini that ``flash()`` uses when called without arguments
      image: key of the environment's ``images:`` that ``load()`` uses without a file name
      address: where ``load()`` writes a plain image (default 0); an .ini file is flashed as a config
      args: extra global options, e.g. ["--reset", "manual"] or ["--load-baud", "921600"]
      flash_args: extra options of the flash command, e.g. ["--resume"] or ["--erase", "1"]
      ign_set_control: add ?ign_set_control to rfc2217:// URLs (default True, as SerialDriver)
      timeout: seconds before a run is killed (default 900)
    """

    bindings = {"port": {"SerialPort", "NetworkSerialPort"}}
    Error = NcpflashError

    tool = _opt_str()
    board = _opt_str()
    chip = _opt_str()
    config = _opt_str()
    image = _opt_str()
    address = attr.ib(default=0, validator=attr.validators.instance_of((int, str)))
    args = _str_list()
    flash_args = _str_list()
    ign_set_control = attr.ib(default=True, validator=attr.validators.instance_of(bool))
    timeout = attr.ib(default=900.0, converter=float)

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.logger = logging.getLogger(f"{self}:{self.target}")
        env = self.target.env
        if self.tool is None:
            self.tool = (env.config.get_tool("ncpflash") if env else None) or "ncpflash"
        if env and self.config:
            self.config = env.config.resolve_path(self.config)

    def on_activate(self):
        pass   # ncpflash opens the port itself, once per call

    def on_deactivate(self):
        pass

    def port_url(self):
        """The --port URL for the bound resource."""
        if isinstance(self.port, NetworkSerialPort):
            host, port = proxymanager.get_host_and_port(self.port)
            if ":" in host:
                host = f"[{host}]"
            if self.port.protocol == "rfc2217":
                return f"rfc2217://{host}:{port}" + ("?ign_set_control" if self.ign_set_control else "")
            if self.port.protocol == "raw":
                return f"socket://{host}:{port}"
            raise ExecutionError(f"NcpflashDriver: unknown protocol {self.port.protocol!r} (rfc2217 or raw)")
        if not self.port.port:
            raise ExecutionError(f"NcpflashDriver: {self.port} has no device path (not connected?)")
        return self.port.port

    def _argv(self, command, args):
        argv = [self.tool, "--json", "--port", self.port_url()]
        if self.board:
            argv += ["--board", self.board]
        if self.chip:
            argv += ["--chip", self.chip]
        return argv + list(self.args) + [command] + [str(a) for a in args]

    def _log_event(self, e):
        kind = e.get("event")
        if kind == "stage":
            detail = e.get("detail")
            self.logger.info("==> %s%s", e.get("name"), f" {detail}" if detail else "")
        elif kind == "info":
            self.logger.info("%s", e.get("message"))
        elif kind == "warn":
            self.logger.warning("%s", e.get("message"))
        elif kind == "error":
            self.logger.error("%s: %s", e.get("code"), e.get("message"))
        elif kind == "progress" and e.get("done") == e.get("total"):
            self.logger.debug("%s %s bytes", e.get("name") or e.get("stage"), e.get("total"))

    @Driver.check_active
    @step(args=["command"], result=True)
    def run(self, command, *args, timeout=None):
        """Run one ncpflash command (``"flash"``, ``"info"``, ``"verify"``, ...) with its arguments.
        Returns the command's result event (a dict) with ``chip_id``, ``mac`` and ``events``
        added; raises NcpflashError when ncpflash fails."""
        argv = self._argv(command, args)
        self.logger.debug("running %s", " ".join(argv))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace")
        stderr = []
        reader = threading.Thread(target=lambda: stderr.extend(proc.stderr.read().splitlines()), daemon=True)
        reader.start()
        killed = []

        def kill():
            killed.append(True)
            proc.kill()

        timer = threading.Timer(timeout or self.timeout, kill)
        timer.start()
        events, result, error, ident = [], None, None, {}
        try:
            for line in proc.stdout:
                try:
                    e = json.loads(line)
                except ValueError:
                    stderr.append(line.rstrip("\n"))
                    continue
                if not isinstance(e, dict):
                    continue
                events.append(e)
                self._log_event(e)
                for k in ("chip_id", "mac"):
                    if e.get(k) and k not in ident:
                        ident[k] = e[k]
                if e.get("event") == "result":
                    result = e
                elif e.get("event") == "error":
                    error = e
            rc = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(5)
        if killed:
            raise NcpflashError("driver_timeout", f"ncpflash {command} did not finish within "
                                f"{timeout or self.timeout:g} s and was killed", None, error, events, stderr)
        if rc != 0:
            if error:
                raise NcpflashError(error.get("code", "failed"), error.get("message", ""), rc, error, events, stderr)
            tail = "; ".join(stderr[-3:])
            raise NcpflashError("exit", f"ncpflash {command} exited with status {rc}" + (f": {tail}" if tail else ""),
                                rc, None, events, stderr)
        out = dict(result or {})
        out.update(ident)
        out["events"] = events
        return out

    def flash(self, config=None, pairs=None, args=None):
        """Flash a QConn/BLFlashCommand flash_prog_cfg.ini (``config``, default the driver's), or
        ``pairs``: a list of (address, file) tuples.  ``args`` are more options of the flash
        command.  Returns the flash result (``bytes_written``, ``regions``, ``seconds``, ...)."""
        if config is not None and pairs:
            raise ValueError("NcpflashDriver.flash: give config or pairs, not both")
        cmd = []
        if pairs:
            for address, filename in pairs:
                cmd += [f"0x{address:x}" if isinstance(address, int) else str(address), filename]
        else:
            config = config or self.config
            if not config:
                raise ValueError("NcpflashDriver.flash: no config (pass config= or set the driver's config)")
            cmd += ["--config", config]
        return self.run("flash", *(cmd + list(self.flash_args) + list(args or [])))

    def load(self, filename=None):
        """BootstrapProtocol: flash ``filename`` (default the driver's ``image``) at ``address``;
        an .ini file is flashed as a config."""
        if filename is None:
            if self.image is None:
                raise ValueError("NcpflashDriver.load: no file (pass one or set the driver's image)")
            filename = self.target.env.config.get_image_path(self.image)
        if filename.endswith(".ini"):
            return self.flash(config=filename)
        return self.flash(pairs=[(self.address, filename)])

    def info(self):
        """ncpflash info: chip id, MAC, ROM version, flash, partition table (the result event)."""
        return self.run("info")


# Every labgrid Environment executes its `imports:` again; the first import registers the driver,
# later ones (a second Environment in the same process) reuse its classes, so that there is one
# NcpflashDriver and one NcpflashError per process.
if "NcpflashDriver" in target_factory.drivers:
    NcpflashDriver = target_factory.drivers["NcpflashDriver"]
    NcpflashError = NcpflashDriver.Error
else:
    target_factory.reg_driver(NcpflashDriver)
