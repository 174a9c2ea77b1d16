"""Training of the text-conditioned grounding network (torch). Nothing on the inference path imports this
package except ``config`` and ``intensity``, which are torch-free."""
