"""NcpflashDriver under labgrid's pytest plugin in local mode (no coordinator), against ncpsim.

Started by tests/lua/test_labgrid.lua, which writes the environment YAML (targets "good",
"faulty" and "local" on three ncpsims, and "ser2net": Debian's ser2net 4 in front of a fourth
ncpsim's pty, when ser2net is installed), sets NCPFLASH_LG_* and afterwards checks the bytes in
each ncpsim's flash.bin.
"""
import os

import pytest
from labgrid.driver.exception import ExecutionError

FW = os.environ.get("NCPFLASH_LG_FW", "")
FW_SIZE = int(os.environ.get("NCPFLASH_LG_FW_SIZE", "0"))


def test_flash_passes(env):
    drv = env.get_target("good").get_driver("NcpflashDriver")
    assert drv.port_url().endswith("?ign_set_control"), drv.port_url()
    res = drv.flash(pairs=[(0x10000, FW)])
    assert res["command"] == "flash"
    assert res["bytes_written"] == FW_SIZE
    assert res["regions"] == 1
    assert res["chip_id"] == os.environ["NCPFLASH_LG_CHIP_GOOD"]
    assert any(e.get("event") == "stage" and e.get("name") == "write" for e in res["events"])


def test_flash_fails_with_the_device_error(env):
    drv = env.get_target("faulty").get_driver("NcpflashDriver")
    with pytest.raises(ExecutionError) as info:
        drv.flash(pairs=[(0x10000, FW)])
    err = info.value
    assert type(err).__name__ == "NcpflashError"
    assert err.code == "device"
    assert err.exit_code == 4
    assert err.fl == 5
    assert err.region == "fw.bin"
    assert "FL 0x0005 FLASH_WRITE_ADDR_ERROR" in err.message
    assert "region is now erased" in err.message
    assert str(err).startswith("ncpflash: device: ")
    assert err.error["op"] == "flash_write"


def test_bootstrap_load_on_a_local_port(env):
    target = env.get_target("local")
    loader = target.get_driver("BootstrapProtocol")
    assert type(loader).__name__ == "NcpflashDriver"
    res = loader.load()          # the environment's image "fw" at the driver's address (0x30000)
    assert res["bytes_written"] == FW_SIZE
    assert res["chip_id"] == os.environ["NCPFLASH_LG_CHIP_LOCAL"]


def test_a_hung_run_is_killed_at_the_driver_timeout(env):
    drv = env.get_target("stalled").get_driver("NcpflashDriver")   # timeout: 2 s; the device stalls 30 s
    with pytest.raises(ExecutionError) as info:
        drv.flash(pairs=[(0x10000, FW)])
    err = info.value
    assert err.code == "driver_timeout"
    assert err.exit_code is None
    assert "did not finish within 2 s" in err.message
    assert any(e.get("event") == "stage" and e.get("name") == "write" for e in err.events)


def test_a_missing_file_is_an_input_error(env):
    drv = env.get_target("good").get_driver("NcpflashDriver")
    with pytest.raises(ExecutionError) as info:
        drv.flash(pairs=[(0x10000, FW + ".missing")])
    assert info.value.code == "input"
    assert info.value.exit_code == 7


def test_flash_through_ser2net_without_modem_lines(env):
    if not os.environ.get("NCPFLASH_LG_SER2NET"):
        pytest.skip("ser2net is not installed")
    drv = env.get_target("ser2net").get_driver("NcpflashDriver")
    res = drv.flash(pairs=[(0x40000, FW)])
    assert res["bytes_written"] == FW_SIZE
    # ?ign_set_control (as labgrid's SerialDriver): no wait for, and no warning about, SET-CONTROL
    warnings = [e["message"] for e in res["events"] if e.get("event") == "warn"]
    assert warnings == [], warnings


def test_the_example_files_load():
    """contrib/labgrid's example environments bind the driver as documented."""
    import yaml
    from labgrid import Environment
    from labgrid.config import Config
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib", "labgrid")
    here = os.path.normpath(here)
    drv = Environment(os.path.join(here, "env-ser2net.yaml")).get_target("main").get_driver(
        "NcpflashDriver", activate=False)
    assert drv.port_url() == "rfc2217://lab-host:4001?ign_set_control"
    assert drv.tool == "/usr/local/bin/ncpflash"
    assert drv.flash_args == ["--resume"]
    usb = Environment(os.path.join(here, "env-usb.yaml")).get_target("main").get_driver(
        "NcpflashDriver", activate=False)
    assert type(usb.port).__name__ == "USBSerialPort"
    assert usb.config == os.path.join(here, "release/ST67W6X_Scripts/Binaries/NCP_Binaries/"
                                            "mission_t02_flash_prog_cfg_v2.0.89.ini")
    assert usb.args == ["--load-baud", "921600"]
    remote = Config(os.path.join(here, "env-remote.yaml")).get_targets()["main"]
    assert remote["resources"]["RemotePlace"]["name"] == "st67-bench-1"
    with open(os.path.join(here, "exporter.yaml"), encoding="utf-8") as f:
        exp = yaml.safe_load(f)
    assert exp["st67-bench-1"]["USBSerialPort"]["match"]["ID_SERIAL_SHORT"] == "A50285BI"
