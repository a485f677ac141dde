pub mod engines;
