//! Edge inference engine (see issue 4).
