//! A microsandbox home as a tool run by hand or by a timer meets it: where
//! it is and where it keeps its parts ([`MsbHome`]), whose it is (its
//! owner's, or the owner's of a directory on the way), and acting on it as
//! its owner.
//!
//! Owns the rule for which identity a tool run as root takes before it
//! touches a home another user owns. The sweep, the scan and every other
//! call of this crate keep the process's identity: only
//! [`ActingAsOwner::of`], called by the tool itself, changes it.

mod layout;
mod owner;

pub use layout::{HomeSource, MsbHome};
pub use owner::ActingAsOwner;
