//! Ctrl-Alt-Play Panel library.
