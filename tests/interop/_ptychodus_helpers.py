"""Constants shared by the Ptychodus interop tests (imported by plain name, like the other
test folders' helper modules)."""

#: Object and probe pixel of the simulated product, in metres.
PIXEL_M = 10e-9
#: Why a module skips when Ptychodus is missing (CI installs it and fails on such skips).
SKIP_REASON = ("Ptychodus 1.7 is not installed; install it with: pip install \"pinn[ptychodus]\" "
               "(or see .ci/run for the lean install)")
