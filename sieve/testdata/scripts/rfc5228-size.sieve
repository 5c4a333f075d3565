# RFC 5228 §5.9 and §5.8
require "fileinto";
if size :over 500K { discard; }
if not size :under 1M { fileinto "big"; }
