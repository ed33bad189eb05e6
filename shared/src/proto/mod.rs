//! The serial wire protocol between the host (`edge-runtime stream`) and the firmware.
