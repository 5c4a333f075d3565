# A part in an unknown charset or encoding is compared as it is.
require "body";
if body :text :contains "plain words" { discard; }
