"""Networks: the lecture's building blocks (:mod:`.blocks`) and the GAN models built from them."""
