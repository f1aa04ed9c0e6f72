"""Flash the target's ST67W611M1 with the driver's config and check what ncpflash reports.

    pytest --lg-env env-ser2net.yaml test_flash.py     (or env-usb.yaml / env-remote.yaml)
"""


def test_flash(target):
    ncpflash = target.get_driver("NcpflashDriver")
    result = ncpflash.flash()          # raises NcpflashError with the device's code and message
    assert result["regions"] >= 1
    print(f"chip {result['chip_id']} ({result['mac']}): {result['bytes_written']} bytes written")
