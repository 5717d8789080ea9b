//! End-to-end tests: the real `jobd` and `jobctl` binaries against a loopback test server, in a
//! temp dir each. Only 127.0.0.1 is ever contacted; 127.0.0.2 serves as the forbidden address.

mod claims;
mod contract;
mod dashboard;
mod failures;
mod faults;
mod fleet;
mod hosts;
mod jobctl;
mod jobctl_ops;
mod lifecycle;
mod ops;
mod schema;
mod seed;
mod split;
mod support;
mod tls;
mod torture;
mod validation;
