"""The appliance harness's plumbing (docs/developer/appliance.md): each module owns one part
of driving the guest; the checks in ../checks/ use them and nothing else touches qemu.

  inputs   what scripts/appliance-test built (image, kernel, module, .debs), from its env
  vm       qemu under TCG: boot, power cut, quit; QMP (screendumps, touches) and the guest
           agent (shell commands in a guest with no network)
  gpio     the gpio-sim chip, the bridge lines' levels and the line sampler
  wallet   the stand-in LNbits in the guest: its invoices and their payment
  lnvend   the service and its ledger as the guest sees them, a sale's steps
  display  screendumps against the host's drawing of the idle screen, pixels, QR codes
  report   figures, per-check artifacts and the run's summary table
"""
